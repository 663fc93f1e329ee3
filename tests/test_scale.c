/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_scale.c: what must stay true when the broker holds many objects:
 * LIST pages resume right whatever was created or destroyed between them
 * (the object a cursor names included), lookups and unlinks stay right
 * while a name table grows (it rehashes a few buckets per operation),
 * thousands of objects come back after a restart, a semaphore's undo slot
 * is recovered when its page is no longer mapped by the daemon (it maps at
 * most SEM_MAP_CACHE pages, and none for a create), and at the fd ceiling
 * a create gets a clear -ENOSPC, never a hang.  Speed is measured by
 * bench/scale.c, not here. */
#include "harness.h"
#include "fakemgr.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static ipcbd d;
static ipcb_client *c;

static const char *const many_args[] = { "--max-objects", "100000", "--max-fds", "1000000", NULL };

static void release(void) {
        if (c)
                ipcb_disconnect(c);
        c = NULL;
}

static void teardown(void) {
        release();
        fixture_cleanup(&d);
}

TestSuite(scale, .fini = teardown, .timeout = 120);

#define SCALE_TEST(name, ...) FIXTURE_TEST(scale, name, &d, release, ##__VA_ARGS__)

static void begin(const char *const *args) {
        raise_nofile(16384);
        fixture_begin(&d, args);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

/* ---- LIST by hand, one page at a time ---- */

typedef struct page {
        uint64_t next;
        bool more;
        unsigned n;
        uint64_t ids[IPCB_MSG_MAX / IPCB_STAT_FIXED];
        char names[IPCB_MSG_MAX / IPCB_STAT_FIXED][IPCB_NAME_MAX + 1];
} page;

static void list_page(int fd, uint8_t kind, uint64_t cursor, uint16_t max, page *ret) {
        static uint32_t id;
        uint8_t buf[IPCB_MSG_MAX];
        ipcb_msg m = { .hdr = { .op = IPCB_OP_LIST, .id = ++id } }, r;
        ipcb_stat_rec rec;
        unsigned nfds = 0;
        ssize_t n;

        m.list.kind = kind;
        m.list.max = max;
        m.list.cursor = cursor;
        n = ipcb__proto_encode(&m, buf, sizeof(buf));
        cr_assert_gt(n, 0);
        cr_assert_eq(raw_send(fd, buf, (size_t)n, NULL, 0), 0);
        n = raw_recv(fd, buf, sizeof(buf), NULL, &nfds, 5000);
        cr_assert_gt(n, 0, "LIST: no reply (%zd)", n);
        cr_assert_eq(ipcb__proto_decode(buf, (size_t)n, nfds, &r), 0);
        cr_assert_eq(r.hdr.status, 0);
        ret->next = r.list_reply.next_cursor;
        ret->more = r.list_reply.more;
        ret->n = 0;
        while (ipcb__list_iter_next(&r.list_reply.iter, &rec) > 0) {
                ret->ids[ret->n] = rec.id;
                snprintf(ret->names[ret->n], sizeof(ret->names[0]), "%.*s", (int)rec.name.len,
                         rec.name.ptr);
                if (kind)
                        cr_assert_eq(rec.kind, kind, "LIST of one kind returned another");
                ret->n++;
        }
}

static void seg(const char *name) {
        ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
        ipcb_shm *s;
        int k;

        o.flags = IPCB_SHM_PERSISTENT;
        k = ipcb_shm_create(c, name, 4096, &o, &s);
        cr_assert_eq(k, 0, "create %s: %s", name, ipcb_strerror(k));
        ipcb_shm_close(s);
}

static void sem(ipcb_client *cl, const char *name) {
        ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
        ipcb_sem *s;
        int k;

        o.flags = IPCB_SEM_PERSISTENT;
        k = ipcb_sem_create(cl, name, 1, &o, &s);
        cr_assert_eq(k, 0, "create %s: %s", name, ipcb_strerror(k));
        ipcb_sem_close(s);
}

/* The object a cursor names is destroyed between two pages: the next page
 * starts at the next object that lives, of the kind asked for. */
SCALE_TEST(list_resumes_after_cursor_object_dies) {
        page p;
        char name[32];
        int fd;

        begin(many_args);
        for (int i = 0; i < 300; i++) {
                snprintf(name, sizeof(name), "a%03d", i);
                if (i % 3 == 1)
                        sem(c, name);
                else
                        seg(name);
        }
        fd = ipcbd_hello_conn(&d);
        for (uint8_t kind = 0; kind <= IPCB_KIND_SEM; kind++) {
                uint64_t cursor = 0, last = 0;
                unsigned seen = 0;
                for (;;) {
                        list_page(fd, kind, cursor, 7, &p);
                        for (unsigned i = 0; i < p.n; i++) {
                                cr_assert_gt(p.ids[i], last, "ids not increasing");
                                last = p.ids[i];
                        }
                        seen += p.n;
                        if (!p.more)
                                break;
                        /* kill the object the cursor names, then go on */
                        const char *last_name = p.names[p.n - 1];
                        cr_assert_eq(atoi(last_name + 1) % 3 == 1 ? ipcb_sem_unlink(c, last_name)
                                                                 : ipcb_unlink(c, last_name),
                                     0, "unlink %s", last_name);
                        cursor = p.next;
                }
                /* every object but the ones we killed on the way */
                unsigned want = kind == 0 ? 300 : kind == IPCB_KIND_SHM ? 200 : 100;
                cr_assert_eq(seen, want, "kind %u: %u listed, want %u", kind, seen, want);
                /* the next pass sees what is left */
                for (int i = 0; i < 300; i++) {
                        snprintf(name, sizeof(name), "a%03d", i);
                        (void)(ipcb_unlink(c, name) == 0 || ipcb_sem_unlink(c, name) == 0);
                        if (i % 3 == 1)
                                sem(c, name);
                        else
                                seg(name);
                }
        }
        close(fd);
        for (int i = 0; i < 300; i++) {
                snprintf(name, sizeof(name), "a%03d", i);
                if (ipcb_unlink(c, name) < 0)
                        cr_assert_eq(ipcb_sem_unlink(c, name), 0);
        }
}

/* A child creates and unlinks objects of both kinds as fast as it can while
 * the test lists: every object that lived throughout is seen exactly once,
 * nothing is seen twice, ids only grow. */
SCALE_TEST(list_under_churn) {
        enum { KEEP = 2000 };
        static bool seen[KEEP];
        char name[32];
        page p;
        pid_t pid;
        int fd;

        begin(many_args);
        for (int i = 0; i < KEEP; i++) {
                snprintf(name, sizeof(name), "keep%04d", i);
                if (i & 1)
                        sem(c, name);
                else
                        seg(name);
        }
        pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_shm *s;
                ipcb_sem *m;
                if (ipcb_connect(d.sock, &cc) < 0)
                        _exit(2);
                for (unsigned i = 0;; i++) {
                        char n[32];
                        snprintf(n, sizeof(n), "churn%u", i % 64);
                        if (i & 1) {
                                if (ipcb_shm_create(cc, n, 4096, NULL, &s) == 0)
                                        ipcb_shm_close(s); /* transient: dies here */
                        } else if (ipcb_sem_create(cc, n, 0, NULL, &m) == 0) {
                                ipcb_sem_close(m);
                        }
                }
        }
        fd = ipcbd_hello_conn(&d);
        for (int pass = 0; pass < 3; pass++) {
                uint64_t cursor = 0, last = 0;
                memset(seen, 0, sizeof(seen));
                do {
                        list_page(fd, 0, cursor, (uint16_t)(5 + pass * 13), &p);
                        for (unsigned i = 0; i < p.n; i++) {
                                cr_assert_gt(p.ids[i], last, "an id seen twice or out of order");
                                last = p.ids[i];
                                if (strncmp(p.names[i], "keep", 4) == 0) {
                                        int k = atoi(p.names[i] + 4);
                                        cr_assert(!seen[k], "%s seen twice", p.names[i]);
                                        seen[k] = true;
                                }
                        }
                        cursor = p.next;
                } while (p.more);
                for (int i = 0; i < KEEP; i++)
                        cr_assert(seen[i], "keep%04d skipped (pass %d)", i, pass);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(fd);
        for (int i = 0; i < KEEP; i++) {
                snprintf(name, sizeof(name), "keep%04d", i);
                cr_assert_eq((i & 1) ? ipcb_sem_unlink(c, name) : ipcb_unlink(c, name), 0);
        }
        ipcb_sync(c);
}

/* The name tables double at 64, 128, ... and move their chains over the
 * following operations: every lookup and unlink in between must find what
 * is there and nothing else. */
SCALE_TEST(lookups_and_unlinks_while_tables_grow) {
        enum { N = 5000 };
        static bool live[N];
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        char name[32];

        begin(many_args);
        for (int i = 0; i < N; i++) {
                snprintf(name, sizeof(name), "g%05d", i);
                seg(name);
                live[i] = true;
                /* now and then unlink an older one, during the migration */
                if (i % 5 == 4) {
                        int j = (i * 7919) % (i + 1);
                        snprintf(name, sizeof(name), "g%05d", j);
                        cr_assert_eq(ipcb_unlink(c, name), live[j] ? 0 : -ENOENT, "unlink %s", name);
                        live[j] = false;
                }
                /* and look up a few, live or not */
                for (int t = 0; t < 3; t++) {
                        int j = (i * 31 + t * 977) % (i + 1);
                        snprintf(name, sizeof(name), "g%05d", j);
                        int k = ipcb_stat(c, IPCB_KIND_SHM, name, &info);
                        cr_assert_eq(k, live[j] ? 0 : -ENOENT, "stat %s during growth: %s", name,
                                     ipcb_strerror(k));
                        /* the other namespace has no such name */
                        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, name, &info), -ENOENT);
                }
        }
        for (int i = 0; i < N; i++) {
                snprintf(name, sizeof(name), "g%05d", i);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, name, &info), live[i] ? 0 : -ENOENT);
                if (live[i])
                        cr_assert_eq(ipcb_unlink(c, name), 0);
        }
}

/* Over SEM_MAP_CACHE (1024) semaphores: the daemon keeps no more mappings
 * than that, and an undo slot on a semaphore whose page it unmapped long
 * ago is still settled when its holder dies. */
static unsigned memfd_maps(pid_t pid) {
        char path[64], line[512];
        unsigned n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
        f = fopen(path, "re");
        cr_assert(f);
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "/memfd:"))
                        n++;
        fclose(f);
        return n;
}

SCALE_TEST(sem_recovery_on_unmapped_page) {
        enum { N = 1300 };
        char name[32];
        int go[2], k;
        pid_t pid;
        ipcb_sem *s;

        begin(many_args);
        cr_assert_eq(pipe(go), 0);
        snprintf(name, sizeof(name), "rec");
        sem(c, name);
        pid = test_fork();
        if (pid == 0) {
                ipcb_client *cc;
                ipcb_sem *u;
                close(go[0]);
                if (ipcb_connect(d.sock, &cc) < 0 || ipcb_sem_open(cc, "rec", IPCB_SEM_UNDO, &u) < 0 ||
                    ipcb_sem_acquire(u) < 0)
                        _exit(2);
                if (write(go[1], "a", 1) != 1)
                        _exit(3);
                pause();
                _exit(0);
        }
        close(go[1]);
        char b;
        cr_assert_eq(read(go[0], &b, 1), 1, "the holder did not take its token");
        close(go[0]);
        cr_assert_eq(ipcb_sem_open(c, "rec", 0, &s), 0);
        cr_assert_eq(ipcb_sem_value(s), 0);
        /* push the page of "rec" out of the daemon's mappings: an undo
         * open maps a semaphore's page (a create alone does not) */
        for (int i = 0; i < N; i++) {
                ipcb_sem *u;
                snprintf(name, sizeof(name), "fill%04d", i);
                sem(c, name);
                cr_assert_eq(ipcb_sem_open(c, name, IPCB_SEM_UNDO, &u), 0);
                ipcb_sem_close(u);
        }
        unsigned maps = memfd_maps(d.pid);
        cr_assert_leq(maps, 1024 + 8, "the daemon maps %u memfd pages for %d semaphores", maps, N + 1);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        for (int t = 0; t < 500 && (k = ipcb_sem_value(s)) == 0; t++)
                usleep(10000);
        cr_assert_eq(ipcb_sem_value(s), 1, "the dead holder's token was not given back");
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "rec", &info), 0);
        cr_assert_eq(info.sem_value, 1);
        cr_assert_eq(info.sem_undo_held, 0);
        ipcb_sem_close(s);
        cr_assert_eq(ipcb_sem_unlink(c, "rec"), 0);
        for (int i = 0; i < N; i++) {
                snprintf(name, sizeof(name), "fill%04d", i);
                cr_assert_eq(ipcb_sem_unlink(c, name), 0);
        }
}

/* A create writes the new semaphore's page without mapping it: a mapping
 * would push an older one out of the daemon's cache, and each unmap is a
 * TLB flush on every CPU the daemon ran on.  The page is mapped when it is
 * first needed (here, an undo slot), and the semaphore works from there. */
SCALE_TEST(sem_create_maps_nothing) {
        enum { N = 200 };
        char name[32];
        ipcb_sem *s, *u;

        begin(many_args);
        unsigned maps = memfd_maps(d.pid);
        for (int i = 0; i < N; i++) {
                snprintf(name, sizeof(name), "nomap%03d", i);
                sem(c, name);
        }
        cr_assert_eq(memfd_maps(d.pid), maps, "%d creates left the daemon %u memfd mappings, not %u", N,
                     memfd_maps(d.pid), maps);
        cr_assert_eq(ipcb_sem_open(c, "nomap007", IPCB_SEM_UNDO, &u), 0);
        cr_assert_eq(memfd_maps(d.pid), maps + 1, "an undo open did not map the page");
        cr_assert_eq(ipcb_sem_open(c, "nomap007", 0, &s), 0);
        cr_assert_eq(ipcb_sem_value(s), 1, "the page was not written at create");
        cr_assert_eq(ipcb_sem_acquire(u), 0);
        cr_assert_eq(ipcb_sem_value(s), 0);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "nomap007", &info), 0);
        cr_assert_eq(info.sem_value, 0);
        cr_assert_eq(info.sem_undo_held, 1);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "nomap008", &info), 0);
        cr_assert_eq(info.sem_value, 1, "a page never mapped reads its initial value");
        ipcb_sem_close(u); /* gives its token back, once the broker reads the CLOSE */
        cr_assert_eq(ipcb_sync(c), 0);
        cr_assert_eq(ipcb_sem_value(s), 1);
        ipcb_sem_close(s);
        for (int i = 0; i < N; i++) {
                snprintf(name, sizeof(name), "nomap%03d", i);
                cr_assert_eq(ipcb_sem_unlink(c, name), 0);
        }
}

/* At the fd budget a create is refused at once with -ENOSPC, the daemon
 * goes on serving, and room made by an unlink is usable again. */
SCALE_TEST(fd_ceiling_is_a_clear_error) {
        struct rlimit old, rl = { 600, 600 };
        /* 600 fds: a reserve of 256 (at least 256, config.c), 344 for objects */
        char name[32];
        int n, k = 0;

        getrlimit(RLIMIT_NOFILE, &old);
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        fixture_begin(&d, many_args);
        setrlimit(RLIMIT_NOFILE, &old);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        ipcb_set_timeout(c, 5000); /* a hang would be -ETIMEDOUT */
        for (n = 0; n < 1000; n++) {
                ipcb_sem_options o = IPCB_SEM_OPTIONS_INIT;
                ipcb_sem *s;
                o.flags = IPCB_SEM_PERSISTENT;
                snprintf(name, sizeof(name), "cap%04d", n);
                if ((k = ipcb_sem_create(c, name, 0, &o, &s)) < 0)
                        break;
                ipcb_sem_close(s);
        }
        cr_assert_eq(k, -ENOSPC, "after %d semaphores: %s", n, ipcb_strerror(k));
        cr_assert_eq(n, 344, "the budget is 344 fds: %d semaphores made", n);
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "cap0000", &info), 0);
        cr_assert_eq(ipcb_sem_unlink(c, "cap0000"), 0);
        ipcb_sync(c);
        ipcb_sem *s;
        cr_assert_eq(ipcb_sem_create(c, "cap-again", 0, NULL, &s), 0);
        ipcb_sem_close(s);
        for (int i = 1; i < n; i++) {
                snprintf(name, sizeof(name), "cap%04d", i);
                cr_assert_eq(ipcb_sem_unlink(c, name), 0);
        }
}

/* ---- restore of many objects ---- */

static fakemgr m;

static void store_release(void) {
        release();
        if (m.pid > 0) {
                int status = fakemgr_stop(&m);
                d.pid = 0;
                cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0x%x", status);
        }
        fakemgr_close(&m);
}

static void store_teardown(void) {
        release();
        if (m.pid > 0)
                fakemgr_stop(&m);
        fakemgr_close(&m);
        fixture_cleanup(&d);
        fakemgr_destroy(&m);
}

TestSuite(scale_store, .fini = store_teardown, .timeout = 120);

static int count_cb(const ipcb_object_info *inf, void *arg) {
        (void)inf;
        ++*(unsigned *)arg;
        return 0;
}

static bool all_stored(const fakemgr *fm, void *arg) {
        return fakemgr_count(fm, "ipcb-o-") == *(unsigned *)arg;
}

FIXTURE_TEST(scale_store, restore_many, &d, store_release) {
        enum { NSEG = 1500, NSEM = 1500 };
        static const char *const args[] = { "--restore-grace", "1", "--max-objects", "100000",
                                            "--max-fds", "1000000", NULL };
        char sock[96], logpath[96], name[32];
        unsigned want = NSEG + NSEM;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        unsigned listed = 0;

        raise_nofile(16384);
        fixture_begin_bare(&d);
        fakemgr_init(&m, "/tmp/ipcbsc.XXXXXX", 8192);
        snprintf(sock, sizeof(sock), "%s/ipcb.sock", m.dir);
        snprintf(logpath, sizeof(logpath), "%s/log", m.dir);
        fakemgr_exec x = { .sock = sock, .args = args, .log = logpath };
        fixture_adopt(&d, fakemgr_start(&m, &x), sock);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        for (unsigned i = 0; i < NSEG; i++) {
                ipcb_shm_options o = IPCB_SHM_OPTIONS_INIT;
                ipcb_shm *s;
                o.flags = IPCB_SHM_PERSISTENT;
                snprintf(name, sizeof(name), "r%05u", i);
                cr_assert_eq(ipcb_shm_create(c, name, 4096, &o, &s), 0);
                ((char *)ipcb_shm_data(s))[0] = (char)i;
                ipcb_shm_close(s);
        }
        for (unsigned i = 0; i < NSEM; i++) {
                snprintf(name, sizeof(name), "q%05u", i);
                sem(c, name);
        }
        ipcb_disconnect(c);
        c = NULL;
        fakemgr_pump_until(&m, all_stored, &want, 20000);
        cr_assert_eq(fakemgr_count(&m, "ipcb-o-"), want);
        int status = fakemgr_stop(&m);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        d.pid = fakemgr_start(&m, &x);
        cr_assert_eq(ipcb_connect(sock, &c), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        /* for the reader, not judged: speed is bench/scale.c's business */
        fprintf(stderr, "[scale] restart with %u stored objects: serving after %.1f ms\n", want,
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
        for (unsigned i = 0; i < NSEG; i++) {
                ipcb_shm *s;
                snprintf(name, sizeof(name), "r%05u", i);
                cr_assert_eq(ipcb_shm_open(c, name, IPCB_READ_ONLY, &s), 0, "%s lost", name);
                cr_assert_eq(((char *)ipcb_shm_data(s))[0], (char)i, "%s: contents lost", name);
                ipcb_shm_close(s);
        }
        for (unsigned i = 0; i < NSEM; i++) {
                snprintf(name, sizeof(name), "q%05u", i);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, name, &info), 0, "%s lost", name);
                cr_assert_eq(info.sem_value, 1);
        }
        cr_assert_eq(ipcb_list(c, 0, count_cb, &listed), 0);
        cr_assert_eq(listed, want);
        cr_assert(file_contains(logpath, "restored 1500 segments and 1500 semaphores"));
        for (unsigned i = 0; i < NSEG; i++) {
                snprintf(name, sizeof(name), "r%05u", i);
                cr_assert_eq(ipcb_unlink(c, name), 0);
        }
        for (unsigned i = 0; i < NSEM; i++) {
                snprintf(name, sizeof(name), "q%05u", i);
                cr_assert_eq(ipcb_sem_unlink(c, name), 0);
        }
        ipcb_sync(c);
}

