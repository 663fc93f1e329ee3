/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_cli.c: ipcbrokerctl as a user meets it, run for real against a real
 * ipcbrokerd (ctlrun.h): help and usage of every command and the exit
 * codes (0, 1 naming the argument, 2 with the command's usage), --sem on
 * stat/rm/cat, names after '--', sizes (1T, too large: the limit is
 * said), escaping of control characters (also from a hostile broker that
 * sends them in LIST), list filters and --holders (HOLDERS), quota --json,
 * watch, and the bash completion.  test_ctl.c covers the commands' own behaviour. */
#include "ctlrun.h"
#include "harness.h"
#include "multiuid.h"

#include "ipcbroker.h"
#include "proto.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static ipcbd d;

static void teardown(void) {
        fixture_cleanup(&d);
}

TestSuite(cli, .fini = teardown, .timeout = 60);

/* Each test begins its own fixture (some with daemon options). */
#define CLI_TEST(name) FIXTURE_TEST(cli, name, &d, fixture_release_nothing)

#define run_ctl(r, ...) ctlrun(r, d.sock, VIA_OPTION, NULL, 0, ARGS(__VA_ARGS__))

/* Exit 2, the command's usage on stderr (not the manual), nothing on stdout. */
static void expect_usage(const ctl_result *r, const char *cmd, const char *what) {
        char want[96];

        expect_fail(r, 2, what);
        snprintf(want, sizeof(want), "\nUsage: ipcbrokerctl %s ", cmd);
        cr_assert(strstr(r->err, want), "%s: no usage of %s: %s", what, cmd, r->err);
        cr_assert_null(strstr(r->err, "Commands:"), "%s: the whole manual: %s", what, r->err);
        cr_assert_eq(r->out_len, 0, "%s: stdout: %s", what, r->out);
}

/* Exit 1, one line that names the argument and not the command. */
static void expect_fail_names(const ctl_result *r, const char *arg, const char *cmd,
                              const char *what) {
        char bad[64];

        expect_fail(r, 1, what);
        cr_assert(strstr(r->err, arg), "%s: '%s' not named: %s", what, arg, r->err);
        snprintf(bad, sizeof(bad), "ipcbrokerctl: %s", cmd);
        cr_assert(strncmp(r->err, bad, strlen(bad)) != 0, "%s: names the command: %s", what,
                  r->err);
}

/* The commands, from the program's own table. */
static unsigned commands(char names[][32], unsigned max) {
        ctl_result r;
        unsigned n = 0;

        run_ctl(&r, "__complete", "commands");
        expect_ok(&r, "__complete commands");
        for (char *line = strtok(r.out, "\n"); line && n < max; line = strtok(NULL, "\n"))
                snprintf(names[n++], 32, "%s", line);
        result_free(&r);
        return n;
}

/* True if python3's json module reads s as one document. */
static bool json_parses(const char *s) {
        FILE *f = popen("python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null", "w");
        cr_assert_not_null(f);
        fputs(s, f);
        return pclose(f) == 0;
}

/* ---- help and usage ---- */

CLI_TEST(help_and_usage_of_every_command) {
        char names[32][32];
        unsigned n;
        ctl_result r;

        fixture_begin(&d, NULL);
        n = commands(names, 32);
        cr_assert_geq(n, 17, "only %u commands", n);
        run_ctl(&r, "help");
        expect_ok(&r, "help");
        for (unsigned i = 0; i < n; i++)
                cr_assert(strstr(r.out, names[i]), "help lacks %s", names[i]);
        cr_assert(strstr(r.out, "Exit status: 0 success, 1 failure, 2 usage error"));
        result_free(&r);

        for (unsigned i = 0; i < n; i++) {
                static const char *const how[] = { "--help", "-h", "help" };
                char want[64];
                snprintf(want, sizeof(want), "Usage: ipcbrokerctl %.31s", names[i]);
                for (unsigned k = 0; k < 3; k++) {
                        if (k == 2)
                                run_ctl(&r, "help", names[i]);
                        else
                                run_ctl(&r, names[i], how[k]);
                        expect_ok(&r, how[k]);
                        cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s %s: %s", names[i],
                                  how[k], r.out);
                        cr_assert(strstr(r.out, "Exit status"), "%s %s", names[i], how[k]);
                        result_free(&r);
                }
                /* An unknown option: that command's usage. */
                run_ctl(&r, names[i], "--no-such-option");
                expect_usage(&r, names[i], names[i]);
                cr_assert(strstr(r.err, "--no-such-option"), "%s", r.err);
                result_free(&r);
                /* Too many arguments. */
                run_ctl(&r, names[i], "a1", "a2", "a3");
                expect_usage(&r, names[i], names[i]);
                result_free(&r);
        }
        /* Missing arguments name what is missing. */
        run_ctl(&r, "create", "seg");
        expect_usage(&r, "create", "create without SIZE");
        cr_assert(strstr(r.err, "missing SIZE"), "%s", r.err);
        result_free(&r);
        run_ctl(&r, "rm");
        expect_usage(&r, "rm", "rm without NAME");
        cr_assert(strstr(r.err, "missing NAME"), "%s", r.err);
        result_free(&r);
        run_ctl(&r, "sem-wait", "s", "--timeout");
        expect_usage(&r, "sem-wait", "option without its argument");
        result_free(&r);
        run_ctl(&r, "create", "seg", "4K", "--mode", "0999");
        expect_usage(&r, "create", "bad mode");
        cr_assert(strstr(r.err, "0999") && strstr(r.err, "octal"), "%s", r.err);
        result_free(&r);

        /* Unknown commands and global options: the general usage. */
        run_ctl(&r, "frobnicate");
        expect_fail(&r, 2, "unknown command");
        cr_assert(strstr(r.err, "'frobnicate'") && strstr(r.err, "Usage: ipcbrokerctl"));
        result_free(&r);
        run_ctl(&r, "help", "frobnicate");
        expect_fail(&r, 2, "help of an unknown command");
        result_free(&r);
        ctlrun(&r, d.sock, VIA_OPTION, NULL, 0, ARGS("--bogus", "list"));
        expect_fail(&r, 2, "unknown global option");
        result_free(&r);
        run_ctl(&r, "--version");
        expect_ok(&r, "--version");
        cr_assert(strstr(r.out, IPCB_VERSION_STRING));
        result_free(&r);
}

CLI_TEST(failures_name_the_argument) {
        ctl_result r;

        fixture_begin(&d, NULL);
        static const char *const seg_cmds[] = { "stat", "rm", "cat", "write", "freeze" };
        for (unsigned i = 0; i < 5; i++) {
                run_ctl(&r, seg_cmds[i], "nosuch");
                expect_fail_names(&r, "segment 'nosuch': no such segment", seg_cmds[i],
                                  seg_cmds[i]);
                result_free(&r);
        }
        static const char *const sem_cmds[] = { "sem-post", "sem-wait", "sem-value", "sem-rm" };
        for (unsigned i = 0; i < 4; i++) {
                run_ctl(&r, sem_cmds[i], "nosuch");
                expect_fail_names(&r, "semaphore 'nosuch': no such semaphore", sem_cmds[i],
                                  sem_cmds[i]);
                result_free(&r);
        }
        run_ctl(&r, "chmod", "nosuch", "0644", "--sem");
        expect_fail_names(&r, "semaphore 'nosuch'", "chmod", "chmod --sem");
        result_free(&r);
        run_ctl(&r, "create", "dup", "4K");
        expect_ok(&r, "create");
        result_free(&r);
        run_ctl(&r, "create", "dup", "4K");
        expect_fail_names(&r, "segment 'dup': a segment of that name exists", "create",
                          "create twice");
        result_free(&r);
        run_ctl(&r, "rm", "dup");
        expect_ok(&r, "rm");
        result_free(&r);
        run_ctl(&r, "register", "/nonexistent/file", "pub");
        expect_fail_names(&r, "'/nonexistent/file'", "register", "register a missing file");
        result_free(&r);
        /* No broker: the socket is named. */
        ctlrun(&r, d.sock, NO_SOCKET, NULL, 0, ARGS("--socket", "/nonexistent/x.sock", "list"));
        expect_fail(&r, 1, "no broker");
        cr_assert(strstr(r.err, "/nonexistent/x.sock"), "%s", r.err);
        result_free(&r);
}

/* ---- semaphores through --sem, names after '--' ---- */

CLI_TEST(sem_option_on_stat_rm_cat) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c;
        ctl_result r;

        fixture_begin(&d, NULL);
        /* One name in both namespaces. */
        run_ctl(&r, "create", "both", "1K");
        expect_ok(&r, "create");
        result_free(&r);
        run_ctl(&r, "sem-create", "both", "5", "--max", "9");
        expect_ok(&r, "sem-create");
        result_free(&r);

        run_ctl(&r, "stat", "--sem", "both");
        expect_ok(&r, "stat --sem");
        cr_assert(strstr(r.out, "kind: sem\n") && strstr(r.out, "value: 5\n") &&
                  strstr(r.out, "max: 9\n"), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "stat", "both");
        expect_ok(&r, "stat");
        cr_assert(strstr(r.out, "kind: shm\n") && strstr(r.out, "size: 1024\n"), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "stat", "both", "--sem", "--json");
        expect_ok(&r, "stat --sem --json");
        cr_assert(json_parses(r.out) && strstr(r.out, "\"value\":5"), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "cat", "--sem", "both");
        expect_ok(&r, "cat --sem");
        cr_assert_str_eq(r.out, "5\n");
        result_free(&r);
        run_ctl(&r, "cat", "both");
        expect_ok(&r, "cat");
        cr_assert_eq(r.out_len, 1024);
        result_free(&r);

        /* rm --sem removes the semaphore only, rm the segment only. */
        run_ctl(&r, "rm", "--sem", "both");
        expect_ok(&r, "rm --sem");
        result_free(&r);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SEM, "both", &info), -ENOENT);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "both", &info), 0);
        run_ctl(&r, "rm", "--sem", "both");
        expect_fail_names(&r, "semaphore 'both': no such semaphore", "rm", "rm --sem twice");
        result_free(&r);
        run_ctl(&r, "rm", "both");
        expect_ok(&r, "rm");
        result_free(&r);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "both", &info), -ENOENT);
        ipcb_disconnect(c);
}

CLI_TEST(names_starting_with_a_dash) {
        ctl_result r;

        fixture_begin(&d, NULL);
        run_ctl(&r, "create", "--", "-dash", "4K");
        expect_ok(&r, "create -- -dash");
        result_free(&r);
        run_ctl(&r, "create", "-dash", "4K");
        expect_usage(&r, "create", "-dash without --");
        result_free(&r);
        run_ctl(&r, "stat", "--json", "--", "-dash");
        expect_ok(&r, "stat -- -dash");
        cr_assert(strstr(r.out, "\"name\":\"-dash\""), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "list", "--", "-d*");
        expect_ok(&r, "list -- -d*");
        cr_assert(strstr(r.out, "-dash"), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "cat", "--", "-dash");
        expect_ok(&r, "cat -- -dash");
        cr_assert_eq(r.out_len, 4096);
        result_free(&r);
        run_ctl(&r, "sem-create", "--", "-s", "1");
        expect_ok(&r, "sem-create -- -s");
        result_free(&r);
        run_ctl(&r, "rm", "--sem", "--", "-s");
        expect_ok(&r, "rm --sem -- -s");
        result_free(&r);
        run_ctl(&r, "rm", "--", "-dash");
        expect_ok(&r, "rm -- -dash");
        result_free(&r);
        run_ctl(&r, "rm", "--", "-dash");
        expect_fail_names(&r, "segment '-dash'", "rm", "rm -- -dash twice");
        result_free(&r);
}

/* ---- sizes ---- */

CLI_TEST(sizes_up_to_the_brokers_maximum) {
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ipcb_client *c;
        ctl_result r;

        /* --max-bytes: uid 0 is exempt from quotas, another uid is not */
        fixture_begin(&d, ARGS("--max-segment-size", "2T", "--max-bytes", "4T"));
        run_ctl(&r, "create", "tera", "1T");
        expect_ok(&r, "create 1T");
        result_free(&r);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "tera", &info), 0);
        cr_assert_eq(info.size, 1ull << 40);
        ipcb_disconnect(c);
        run_ctl(&r, "list");
        expect_ok(&r, "list");
        cr_assert(strstr(r.out, " 1T "), "human size: %s", r.out);
        result_free(&r);
        run_ctl(&r, "list", "--bytes");
        expect_ok(&r, "list --bytes");
        cr_assert(strstr(r.out, " 1099511627776 "), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "rm", "tera");
        expect_ok(&r, "rm");
        result_free(&r);

        /* Above the broker's maximum: its maximum is said, exactly. */
        run_ctl(&r, "create", "huge", "3T");
        expect_fail(&r, 1, "create 3T");
        cr_assert(strstr(r.err, "'3T'") && strstr(r.err, "2T (2199023255552 bytes)"), "%s",
                  r.err);
        result_free(&r);
        run_ctl(&r, "create", "huge", "2199023255553");
        expect_fail(&r, 1, "create 2T + 1");
        cr_assert(strstr(r.err, "(2199023255552 bytes)"), "%s", r.err);
        result_free(&r);
        /* Above what any broker takes: a usage error with the CLI's limit. */
        run_ctl(&r, "create", "huge", "8388608T");
        expect_usage(&r, "create", "create 8E");
        cr_assert(strstr(r.err, "at most 9223372036854775807 bytes"), "%s", r.err);
        result_free(&r);
        run_ctl(&r, "create", "huge", "99999999999999999999");
        expect_usage(&r, "create", "create 10^20");
        cr_assert(strstr(r.err, "too large"), "%s", r.err);
        result_free(&r);
        /* Human sizes in the table round up, never down. */
        run_ctl(&r, "create", "odd", "1025");
        expect_ok(&r, "create 1025");
        result_free(&r);
        run_ctl(&r, "list");
        cr_assert(strstr(r.out, " 1.1K "), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "rm", "odd");
        expect_ok(&r, "rm");
        result_free(&r);
}

CLI_TEST(size_limit_of_a_default_broker) {
        ctl_result r;

        fixture_begin(&d, NULL);
        run_ctl(&r, "create", "big", "1T");
        expect_fail(&r, 1, "1T above the default 1G");
        cr_assert(strstr(r.err, "1G (1073741824 bytes)"), "%s", r.err);
        result_free(&r);
        run_ctl(&r, "create", "big", "1G");
        expect_ok(&r, "create 1G");
        result_free(&r);
        run_ctl(&r, "rm", "big");
        expect_ok(&r, "rm");
        result_free(&r);
}

/* ---- names: the rule, and escaping ---- */

CLI_TEST(bad_names_say_the_rule_and_are_escaped) {
        static const char *const bad[] = { "a/b", ".hidden", "", "tab\there", "esc\x1b[2Jx",
                                           "nl\nforged line" };
        char longname[300];
        ctl_result r;

        fixture_begin(&d, NULL);
        for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                run_ctl(&r, "create", bad[i], "4K");
                expect_usage(&r, "create", bad[i]);
                cr_assert(strstr(r.err, "letters, digits and . _ : @ + -"), "%s", r.err);
                cr_assert_null(strchr(r.err, '\x1b'), "raw escape printed");
                cr_assert_null(strchr(r.err, '\t'), "raw tab printed");
                result_free(&r);
        }
        run_ctl(&r, "stat", "esc\x1b[2Jx");
        expect_usage(&r, "stat", "escape");
        cr_assert(strstr(r.err, "'esc\\x1b[2Jx'"), "%s", r.err);
        result_free(&r);
        memset(longname, 'n', 256);
        longname[256] = '\0';
        run_ctl(&r, "rm", longname);
        expect_usage(&r, "rm", "256 bytes");
        cr_assert(strstr(r.err, "too long (256 bytes)"), "%s", r.err);
        result_free(&r);
}

/* A hostile (or broken) broker's LIST names carry control characters: the
 * table and JSON must not pass them to the terminal. */
static void serve_hostile_list(int lfd) {
        static const char evil[] = "evil\x1b[2J\r\nforged";
        uint8_t buf[IPCB_MSG_MAX], out[IPCB_MSG_MAX];
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ssize_t n;

        while (fd >= 0 && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
                ipcb_msg m, rep = { 0 };
                ipcb_stat_rec rec = { .kind = IPCB_KIND_SHM, .name = { evil, sizeof(evil) - 1 },
                                      .mode = 0600, .flags = IPCB_WF_PERSISTENT, .id = 1,
                                      .size = 4096 };
                if (ipcb__proto_decode(buf, (size_t)n, 0, &m) < 0)
                        break;
                rep.hdr = (ipcb_hdr){ .op = m.hdr.op | IPCB_OP_REPLY, .id = m.hdr.id };
                if (m.hdr.op == IPCB_OP_HELLO) {
                        rep.hello_reply.version = IPCB_PROTO_VERSION;
                        rep.hello_reply.msg_max = IPCB_MSG_MAX;
                        rep.hello_reply.name_max = IPCB_NAME_MAX;
                        rep.hello_reply.fds_max = IPCB_FDS_MAX;
                } else if (m.hdr.op == IPCB_OP_LIST) {
                        rep.list_reply.count = 1;
                        rep.list_reply.next_cursor = 1;
                        rep.list_reply.recs = &rec;
                } else
                        rep.hdr.status = -EOPNOTSUPP;
                ssize_t len = ipcb__proto_encode(&rep, out, sizeof(out));
                if (len < 0 || send(fd, out, (size_t)len, MSG_NOSIGNAL) != len)
                        break;
        }
}

CLI_TEST(hostile_broker_names_are_escaped) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ctl_result r;
        pid_t pid;
        int lfd, st;

        fixture_begin(&d, NULL);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fake.sock", d.dir);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(lfd, 0);
        cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        cr_assert_eq(listen(lfd, 4), 0);
        for (int k = 0; k < 2; k++) {
                pid = test_fork();
                if (pid == 0) {
                        serve_hostile_list(lfd);
                        _exit(0);
                }
                ctlrun(&r, sa.sun_path, VIA_OPTION, NULL, 0,
                       k == 0 ? ARGS("list") : ARGS("list", "--json"));
                expect_ok(&r, k == 0 ? "list" : "list --json");
                cr_assert_null(strchr(r.out, '\x1b'), "raw ESC reached stdout: %s", r.out);
                cr_assert_null(strchr(r.out, '\r'), "raw CR reached stdout");
                cr_assert_eq(count_lines(r.out, r.out_len), k == 0 ? 2 : 1, "forged line: %s",
                             r.out);
                if (k == 0)
                        cr_assert(strstr(r.out, "evil\\x1b[2J\\x0d\\x0aforged"), "%s", r.out);
                else {
                        cr_assert(strstr(r.out, "evil\\u001b[2J\\u000d\\u000aforged"), "%s", r.out);
                        cr_assert(json_parses(r.out), "%s", r.out);
                }
                result_free(&r);
                cr_assert_eq(waitpid(pid, &st, 0), pid);
        }
        close(lfd);
        unlink(sa.sun_path);
}

/* ---- list filters, quota --json ---- */

static void create_all(const char *const *segs, const char *const *sems) {
        ctl_result r;
        for (unsigned i = 0; segs[i]; i++) {
                run_ctl(&r, "create", segs[i], "4K");
                expect_ok(&r, segs[i]);
                result_free(&r);
        }
        for (unsigned i = 0; sems[i]; i++) {
                run_ctl(&r, "sem-create", sems[i]);
                expect_ok(&r, sems[i]);
                result_free(&r);
        }
}

/* The names in a list's table (second column), space-separated. */
static void table_names(const char *out, char *buf, size_t cap) {
        const char *line = strchr(out, '\n');
        size_t n = 0;

        buf[0] = '\0';
        while (line && line[1]) {
                char kind[8], name[300];
                if (sscanf(line + 1, "%7s %299s", kind, name) == 2)
                        n += (size_t)snprintf(buf + n, cap - n, "%s%s:%s", n ? " " : "", kind, name);
                line = strchr(line + 1, '\n');
        }
}

CLI_TEST(list_filters_by_kind_and_pattern) {
        char names[512];
        ctl_result r;

        fixture_begin(&d, NULL);
        create_all(ARGS("svc.a", "svc.b", "other"), ARGS("svc.s", "lock"));
        const struct {
                const char *const *args;
                const char *want;
        } cases[] = {
                { ARGS("list"), "shm:svc.a shm:svc.b shm:other sem:svc.s sem:lock" },
                { ARGS("list", "svc.*"), "shm:svc.a shm:svc.b sem:svc.s" },
                { ARGS("list", "--sem"), "sem:svc.s sem:lock" },
                { ARGS("list", "--shm"), "shm:svc.a shm:svc.b shm:other" },
                { ARGS("list", "--shm", "--sem"), "shm:svc.a shm:svc.b shm:other sem:svc.s sem:lock" },
                { ARGS("list", "--sem", "svc.*"), "sem:svc.s" },
                { ARGS("list", "*.[ab]"), "shm:svc.a shm:svc.b" },
                { ARGS("list", "nothing*"), "" },
        };
        for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                ctlrun(&r, d.sock, VIA_OPTION, NULL, 0, cases[i].args);
                expect_ok(&r, cases[i].want);
                table_names(r.out, names, sizeof(names));
                cr_assert_str_eq(names, cases[i].want, "case %u", i);
                result_free(&r);
        }
        run_ctl(&r, "list", "--shm", "svc.*", "--json");
        expect_ok(&r, "list --json");
        cr_assert(json_parses(r.out), "%s", r.out);
        cr_assert(strstr(r.out, "\"svc.a\"") && strstr(r.out, "\"svc.b\"") &&
                  !strstr(r.out, "svc.s") && !strstr(r.out, "other"), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "list", "--json", "none*");
        expect_ok(&r, "empty list --json");
        cr_assert_str_eq(r.out, "[]\n");
        result_free(&r);
        static const char *const segs[] = { "svc.a", "svc.b", "other" };
        for (unsigned i = 0; i < 3; i++) {
                run_ctl(&r, "rm", segs[i]);
                expect_ok(&r, "rm");
                result_free(&r);
        }
        run_ctl(&r, "rm", "--sem", "svc.s");
        expect_ok(&r, "rm");
        result_free(&r);
        run_ctl(&r, "sem-rm", "lock");
        expect_ok(&r, "sem-rm");
        result_free(&r);
}

/* The HOLDERS cell of name's row in a list --holders table. */
static void holders_cell(const char *out, const char *name, char *buf, size_t cap) {
        char want[64];
        const char *row, *eol, *cell;

        snprintf(want, sizeof(want), "  %s ", name);
        row = strstr(out, want);
        cr_assert_not_null(row, "no row for %s: %s", name, out);
        eol = strchr(row, '\n');
        for (cell = eol; cell > row && cell[-1] != ' '; cell--)
                ;
        snprintf(buf, cap, "%.*s", (int)(eol - cell), cell);
}

/* Another uid asks: refused while it may not read the object (0600),
 * answered once it may (0644). */
static int holders_as_stranger_refused(void *arg) {
        ipcb_holder h[4];
        ipcb_client *c;
        int r;

        CHILD_CHECK(ipcb_connect(arg, &c) == 0, "connect");
        r = ipcb_holders(c, IPCB_KIND_SHM, "held", h, 4, NULL);
        CHILD_CHECK(r == -EACCES, "holders of an unreadable object as another uid: %d", r);
        ipcb_disconnect(c);
        return 0;
}

static int holders_as_stranger(void *arg) {
        ipcb_holder h[4];
        ipcb_client *c;
        int r;

        CHILD_CHECK(ipcb_connect(arg, &c) == 0, "connect");
        r = ipcb_holders(c, IPCB_KIND_SHM, "held", h, 4, NULL);
        CHILD_CHECK(r == 2 && h[0].pid == getppid() && h[1].pid == getppid(),
                    "holders as another uid: %d", r);
        ipcb_disconnect(c);
        return 0;
}

CLI_TEST(list_holders) {
        enum { MANY = IPCB_HOLDERS_MAX + 1 };
        static ipcb_client *conns[MANY];
        char cell[64], want[64];
        ipcb_shm *s1, *s2, *s3, *gone, *many[MANY];
        ipcb_holder h[4];
        ipcb_client *c1, *c2;
        ctl_result r;

        raise_nofile(4096);
        fixture_begin(&d, ARGS("--max-connections", "1000"));
        create_all(ARGS("held", "idle", "gone"), ARGS(NULL));
        cr_assert_eq(ipcb_connect(d.sock, &c1), 0);
        cr_assert_eq(ipcb_connect(d.sock, &c2), 0);
        cr_assert_eq(ipcb_shm_open(c1, "held", IPCB_READ_ONLY, &s1), 0);
        cr_assert_eq(ipcb_shm_open(c2, "held", IPCB_READ_ONLY, &s2), 0);
        cr_assert_eq(ipcb_shm_open(c2, "held", IPCB_READ_WRITE, &s3), 0);
        cr_assert_eq(ipcb_shm_open(c1, "gone", IPCB_READ_ONLY, &gone), 0);
        cr_assert_eq(ipcb_unlink(c1, "gone"), 0);

        /* The library: one record per connection, with its handles. */
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        uint64_t id = 0;
        cr_assert_eq(ipcb_holders(c1, IPCB_KIND_SHM, "held", h, 4, &id), 2);
        cr_assert_eq(ipcb_stat(c1, IPCB_KIND_SHM, "held", &info), 0);
        cr_assert_eq(id, info.id, "HOLDERS names another object");
        cr_assert_eq(h[0].pid, getpid());
        cr_assert_eq(h[1].pid, getpid());
        cr_assert_eq(h[0].handles + h[1].handles, 3);
        cr_assert_eq(h[0].uid, geteuid());
        cr_assert_eq(ipcb_holders(c1, IPCB_KIND_SHM, "idle", h, 4, NULL), 0);
        cr_assert_eq(ipcb_holders(c1, IPCB_KIND_SHM, "held", NULL, 0, NULL), 2);
        cr_assert_eq(ipcb_holders(c1, IPCB_KIND_SEM, "held", h, 4, NULL), -ENOENT);
        cr_assert_eq(ipcb_holders(c1, IPCB_KIND_SHM, "gone", h, 4, NULL), -ENOENT);
        cr_assert_eq(ipcb_holders(c1, IPCB_KIND_SHM, "a/b", h, 4, NULL), -EINVAL);
        if (geteuid() == 0) {
                RUN_AS(UID_C, false, holders_as_stranger_refused, d.sock);
                cr_assert_eq(ipcb_chmod(c1, IPCB_KIND_SHM, "held", 0644), 0);
                RUN_AS(UID_C, false, holders_as_stranger, d.sock);
        }

        /* The CLI: HOLDERS lists the pid once per connection. */
        run_ctl(&r, "list", "--holders");
        expect_ok(&r, "list --holders");
        cr_assert(strstr(r.out, " HOLDERS\n"), "%s", r.out);
        snprintf(want, sizeof(want), "%d,%d", (int)getpid(), (int)getpid());
        holders_cell(r.out, "held", cell, sizeof(cell));
        cr_assert_str_eq(cell, want, "%s", r.out);
        holders_cell(r.out, "idle", cell, sizeof(cell));
        cr_assert_str_eq(cell, "-");
        holders_cell(r.out, "gone (unlinked)", cell, sizeof(cell));
        cr_assert_str_eq(cell, "?", "an unlinked object has no name to ask by: %s", r.out);
        result_free(&r);
        run_ctl(&r, "list", "--holders", "--json", "held");
        expect_ok(&r, "list --holders --json");
        cr_assert(json_parses(r.out), "%s", r.out);
        cr_assert(strstr(r.out, "\"holders_total\":2,\"holders\":[{\"pid\":"), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "list");
        cr_assert_null(strstr(r.out, "HOLDERS"), "no HOLDERS without --holders");
        result_free(&r);

        /* More connections than a reply names: "+N". */
        for (int i = 0; i < MANY; i++) {
                cr_assert_eq(ipcb_connect(d.sock, &conns[i]), 0, "connection %d", i);
                cr_assert_eq(ipcb_shm_open(conns[i], "idle", IPCB_READ_ONLY, &many[i]), 0);
        }
        cr_assert_eq(ipcb_holders(c1, IPCB_KIND_SHM, "idle", h, 4, NULL), MANY);
        run_ctl(&r, "list", "--holders", "idle");
        expect_ok(&r, "list --holders, many");
        cr_assert(strstr(r.out, ",+1\n"), "%.200s", r.out + (r.out_len > 200 ? r.out_len - 200 : 0));
        result_free(&r);
        for (int i = 0; i < MANY; i++) {
                ipcb_shm_close(many[i]);
                ipcb_disconnect(conns[i]);
        }

        ipcb_shm_close(s1);
        ipcb_shm_close(s2);
        ipcb_shm_close(s3);
        ipcb_shm_close(gone);
        cr_assert_eq(ipcb_unlink(c1, "held"), 0);
        cr_assert_eq(ipcb_unlink(c1, "idle"), 0);
        ipcb_disconnect(c1);
        ipcb_disconnect(c2);
}

/* Each connection's handles on an object are counted in a record of its
 * own (daemon/peer.c: a table per connection, by object, that grows and
 * whose entries move back when one goes): handles opened on hundreds of
 * objects from two connections, then closed in a scattered order, and
 * every object's holders asked at each step.  A miscount, or a record the
 * table lost, shows as a wrong count (or a daemon that died). */
CLI_TEST(holders_counted_through_churn) {
        enum { OBJS = 500, PER = 3, STEP = 250 };
        static ipcb_shm *hs[OBJS * PER];
        static unsigned open_on[OBJS][2]; /* handles open per object, per connection */
        ipcb_shm_options so = IPCB_SHM_OPTIONS_INIT;
        ipcb_client *c[2];
        ipcb_holder h[4];
        char name[16];
        ipcb_shm *s;

        raise_nofile(4096);
        fixture_begin(&d, NULL);
        so.flags = IPCB_SHM_PERSISTENT;
        for (int k = 0; k < 2; k++)
                cr_assert_eq(ipcb_connect(d.sock, &c[k]), 0);
        for (int i = 0; i < OBJS; i++) {
                snprintf(name, sizeof(name), "ch%03d", i);
                cr_assert_eq(ipcb_shm_create(c[0], name, 4096, &so, &s), 0, "%s", name);
                cr_assert_eq(ipcb_shm_close(s), 0);
        }
        /* handle n: object n % OBJS, connection (n / OBJS) % 2 */
        for (int n = 0; n < OBJS * PER; n++) {
                int i = n % OBJS, k = (n / OBJS) % 2;
                snprintf(name, sizeof(name), "ch%03d", i);
                cr_assert_eq(ipcb_shm_open(c[k], name, IPCB_READ_ONLY, &hs[n]), 0, "%s", name);
                open_on[i][k]++;
        }
        /* 7 and OBJS * PER are coprime: every handle once, scattered */
        for (int step = 0; step <= OBJS * PER; step++) {
                if (step % STEP == 0 || step == OBJS * PER) {
                        for (int i = 0; i < OBJS; i++) {
                                unsigned want = (open_on[i][0] > 0) + (open_on[i][1] > 0), got = 0;
                                snprintf(name, sizeof(name), "ch%03d", i);
                                int r = ipcb_holders(c[0], IPCB_KIND_SHM, name, h, 4, NULL);
                                cr_assert_eq(r, (int)want, "%s after %d closes: %d holders", name, step, r);
                                for (int j = 0; j < r; j++)
                                        got += h[j].handles;
                                cr_assert_eq(got, open_on[i][0] + open_on[i][1], "%s after %d closes", name,
                                             step);
                        }
                }
                if (step == OBJS * PER)
                        break;
                int n = (int)(((long)step * 7) % (OBJS * PER));
                cr_assert_eq(ipcb_shm_close(hs[n]), 0);
                open_on[n % OBJS][(n / OBJS) % 2]--;
        }
        for (int i = 0; i < OBJS; i++) {
                snprintf(name, sizeof(name), "ch%03d", i);
                cr_assert_eq(ipcb_unlink(c[0], name), 0);
        }
        for (int k = 0; k < 2; k++)
                ipcb_disconnect(c[k]);
}

CLI_TEST(quota_json_is_one_document) {
        ctl_result r;

        fixture_begin(&d, NULL);
        create_all(ARGS("q1"), ARGS("q2"));
        run_ctl(&r, "quota", "--json");
        expect_ok(&r, "quota --json");
        cr_assert(json_parses(r.out), "not one JSON document: %s", r.out);
        cr_assert_eq(r.out[0], '[', "%s", r.out);
        char want[64], uid[16];
        snprintf(want, sizeof(want), "\"uid\":%u,\"exempt\":%s,\"objects\":2", (unsigned)geteuid(),
                 geteuid() == 0 ? "true" : "false");
        snprintf(uid, sizeof(uid), "%u", (unsigned)geteuid());
        cr_assert(strstr(r.out, want), "%s", r.out);
        result_free(&r);
        run_ctl(&r, "quota", "--uid", uid, "--json");
        expect_ok(&r, "quota --uid (ours) --json");
        cr_assert(json_parses(r.out), "%s", r.out);
        cr_assert_eq(r.out[0], '[', "%s", r.out);
        result_free(&r);
        run_ctl(&r, "quota", "--uid", "x");
        expect_usage(&r, "quota", "quota --uid x");
        result_free(&r);
        run_ctl(&r, "rm", "q1");
        expect_ok(&r, "rm");
        result_free(&r);
        run_ctl(&r, "sem-rm", "q2");
        expect_ok(&r, "sem-rm");
        result_free(&r);
}

/* ---- watch ---- */

CLI_TEST(watch_prints_created_and_unlinked) {
        char *out = NULL, name[32], line[64];
        size_t len = 0;
        ctl_result r;
        int fd, st;
        pid_t pid;
        bool seen = false;

        fixture_begin(&d, NULL);
        create_all(ARGS("before"), ARGS(NULL));
        pid = ctlrun_spawn(d.sock, ARGS("watch", "--interval", "20", "w*"), &fd);
        /* Objects created before its first poll are not news: create until
         * one is reported. */
        for (int i = 0; i < 50 && !seen; i++) {
                snprintf(name, sizeof(name), "w%d", i);
                run_ctl(&r, "create", name, "4K");
                expect_ok(&r, "create");
                result_free(&r);
                snprintf(line, sizeof(line), "created shm %s\n", name);
                seen = ctlrun_wait_output(fd, &out, &len, line, 200);
        }
        cr_assert(seen, "no created line: %s", out);
        run_ctl(&r, "rm", name);
        expect_ok(&r, "rm");
        result_free(&r);
        snprintf(line, sizeof(line), "unlinked shm %s\n", name);
        cr_assert(ctlrun_wait_output(fd, &out, &len, line, 3000), "no unlinked line: %s", out);
        run_ctl(&r, "sem-create", "wsem");
        expect_ok(&r, "sem-create");
        result_free(&r);
        cr_assert(ctlrun_wait_output(fd, &out, &len, "created sem wsem\n", 3000), "%s", out);
        run_ctl(&r, "rm", "--sem", "wsem");
        expect_ok(&r, "rm --sem");
        result_free(&r);
        cr_assert(ctlrun_wait_output(fd, &out, &len, "unlinked sem wsem\n", 3000), "%s", out);
        /* Outside the pattern: not reported. */
        run_ctl(&r, "rm", "before");
        expect_ok(&r, "rm");
        result_free(&r);
        cr_assert_not(ctlrun_wait_output(fd, &out, &len, "before", 200), "%s", out);

        cr_assert_eq(kill(pid, SIGINT), 0);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "watch after SIGINT: status %d", st);
        close(fd);
        free(out);
        /* The earlier names are gone already, all but the last created. */
        for (int i = 0; i < 50; i++) {
                snprintf(name, sizeof(name), "w%d", i);
                ipcb_client *c;
                cr_assert_eq(ipcb_connect(d.sock, &c), 0);
                ipcb_unlink(c, name);
                ipcb_disconnect(c);
        }
}

/* ---- bash completion ---- */

/* Source the completion file in bash, complete words, print COMPREPLY. */
static void complete(const char *words, int cword, char *out, size_t cap) {
        char cmd[2048], src[1024], *dir;
        FILE *f;
        size_t n;

        snprintf(src, sizeof(src), "%s", __FILE__);
        dir = dirname(src);
        snprintf(cmd, sizeof(cmd),
                 "bash -c 'source \"%s/../client/ipcbrokerctl.bash\" && "
                 "COMP_WORDS=(%s %s) && COMP_CWORD=%d && _ipcbrokerctl && "
                 "echo \"${COMPREPLY[*]}\"'",
                 dir, IPCBROKERCTL_PATH, words, cword);
        f = popen(cmd, "r");
        cr_assert_not_null(f);
        n = fread(out, 1, cap - 1, f);
        out[n] = '\0';
        cr_assert_eq(pclose(f), 0, "%s", cmd);
}

CLI_TEST(bash_completion) {
        char out[1024];

        fixture_begin_bare(&d);
        complete("cr", 1, out, sizeof(out));
        cr_assert_str_eq(out, "create\n");
        complete("sem-", 1, out, sizeof(out));
        cr_assert_str_eq(out, "sem-create sem-post sem-wait sem-value sem-rm\n");
        complete("list --b", 2, out, sizeof(out));
        cr_assert_str_eq(out, "--bytes\n");
        complete("--socket /x rm --s", 4, out, sizeof(out));
        cr_assert_str_eq(out, "--sem --socket --system\n");
        complete("help wa", 2, out, sizeof(out));
        cr_assert_str_eq(out, "watch\n");
        complete("create --", 2, out, sizeof(out));
        cr_assert_str_eq(out, "--mode --growable --persistent --socket --system --user --help\n");
}

/* NAME completes from the broker, of the kind --sem (or sem-*) says. */
CLI_TEST(bash_completion_of_names) {
        char out[1024], words[256];
        ctl_result r;

        fixture_begin(&d, NULL);
        create_all(ARGS("alpha", "alps", "beta"), ARGS("alsem"));
        snprintf(words, sizeof(words), "--socket %s rm al", d.sock);
        complete(words, 4, out, sizeof(out));
        cr_assert_str_eq(out, "alpha alps\n");
        snprintf(words, sizeof(words), "--socket %s stat --sem al", d.sock);
        complete(words, 5, out, sizeof(out));
        cr_assert_str_eq(out, "alsem\n");
        snprintf(words, sizeof(words), "--socket %s sem-post \"\"", d.sock);
        complete(words, 4, out, sizeof(out));
        cr_assert_str_eq(out, "alsem\n");
        /* Only the first argument is a NAME. */
        snprintf(words, sizeof(words), "--socket %s chmod alpha al", d.sock);
        complete(words, 5, out, sizeof(out));
        cr_assert_str_eq(out, "\n");
        static const char *const segs[] = { "alpha", "alps", "beta" };
        for (unsigned i = 0; i < 3; i++) {
                run_ctl(&r, "rm", segs[i]);
                expect_ok(&r, "rm");
                result_free(&r);
        }
        run_ctl(&r, "sem-rm", "alsem");
        expect_ok(&r, "sem-rm");
        result_free(&r);
}

/* ---- ipcb_strerror: what the errnos mean here ---- */

CLI_TEST(strerror_says_what_the_library_means) {
        static const int ipc[] = { ETIMEDOUT, EDQUOT, ENOSPC, EKEYREJECTED, EUSERS, ESTALE,
                                   EBUSY, ECHILD, EOWNERDEAD, EROFS, EBADFD, EOVERFLOW,
                                   EDEADLK, ESRCH, EAGAIN, EPROTO, ENOTCONN };

        fixture_begin_bare(&d);
        for (unsigned i = 0; i < sizeof(ipc) / sizeof(ipc[0]); i++) {
                const char *s = ipcb_strerror(-ipc[i]);
                cr_assert_not_null(s);
                cr_assert_str_neq(s, strerror(ipc[i]), "errno %d keeps the C library's text",
                                  ipc[i]);
                cr_assert_str_eq(ipcb_strerror(ipc[i]), s, "positive %d", ipc[i]);
        }
        cr_assert_null(strstr(ipcb_strerror(-ETIMEDOUT), "onnection"), "%s",
                       ipcb_strerror(-ETIMEDOUT));
        cr_assert(strstr(ipcb_strerror(-ETIMEDOUT), "semaphore"));
        /* Others: the C library's; never NULL. */
        cr_assert_str_eq(ipcb_strerror(-EIO), strerror(EIO));
        cr_assert_str_eq(ipcb_strerror(0), "success");
        cr_assert_str_eq(ipcb_strerror(-100000), "unknown error");
        cr_assert_str_eq(ipcb_strerror(-2147483647 - 1), "unknown error");
}
