/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_ctl.c: ipcbrokerctl, fork-exec'd against a real ipcbrokerd.  Checks
 * exit codes (0 success, 1 failure with exactly one line on stderr, 2 usage),
 * output formats (table, "key: value", JSON), and binary write/cat round
 * trips.  The daemon is reached through --socket, with $IPCBROKER_SOCKET
 * removed from the environment, except where the environment is the point.
 * Every test runs in the harness fixture (harness.h): at its end the daemon
 * is back at its idle fd count, the test process at its own, and the daemon
 * exits 0. */
#include "ctlrun.h"
#include "harness.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static ipcbd d;
static ipcb_client *c;

static void setup(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
}

/* What every test holds until its end: the client.  Every segment the CLI
 * made the test removes itself. */
static void release(void) {
        ipcb_disconnect(c);
        c = NULL;
}

/* After a test that failed or skipped before fixture_end. */
static void teardown(void) {
        release();
        fixture_cleanup(&d);
}

TestSuite(ctl, .init = setup, .fini = teardown, .timeout = 30);

/* fixture_end (harness.h) after every body: both fd counts back, clean exit. */
#define CHECKED_TEST(suite, name) FIXTURE_TEST(suite, name, &d, release)

/* ---- running the CLI (ctlrun.h) ---- */

#define run_ctl_v(r, how, in, in_len, args) ctlrun(r, d.sock, how, in, in_len, args)
#define run_ctl(r, ...) run_ctl_v(r, VIA_OPTION, NULL, 0, ARGS(__VA_ARGS__))

/* Minimal JSON sanity: a top-level array, brackets and braces balanced
 * outside strings, strings terminated. */
static bool json_array_ok(const char *s) {
        char stack[64];
        int depth = 0;
        bool in_str = false;
        size_t len = strlen(s);

        while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
                len--;
        if (len < 2 || s[0] != '[' || s[len - 1] != ']')
                return false;
        for (size_t i = 0; i < len; i++) {
                char ch = s[i];
                if (in_str) {
                        if (ch == '\\')
                                i++;
                        else if (ch == '"')
                                in_str = false;
                        else if ((unsigned char)ch < 0x20)
                                return false;
                        continue;
                }
                if (ch == '"')
                        in_str = true;
                else if (ch == '[' || ch == '{') {
                        if (depth == (int)sizeof(stack))
                                return false;
                        stack[depth++] = ch;
                } else if (ch == ']' || ch == '}') {
                        if (depth == 0 || stack[--depth] != (ch == ']' ? '[' : '{'))
                                return false;
                        if (depth == 0 && i != len - 1)
                                return false;
                }
        }
        return depth == 0 && !in_str;
}

static void random_bytes(uint8_t *p, size_t n, unsigned seed) {
        srand(seed);
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)rand();
}

/* ---- tests ---- */

CHECKED_TEST(ctl, create_list_stat_rm) {
        ctl_result r;
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;

        run_ctl(&r, "create", "ctlseg", "4096");
        expect_ok(&r, "create");
        cr_assert_eq(r.out_len, 0);
        result_free(&r);
        /* Persistent by design: it outlives the CLI's connection. */
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "ctlseg", &info), 0, "segment gone after create");
        cr_assert_eq(info.size, 4096);
        cr_assert(info.flags & IPCB_SHM_PERSISTENT);
        cr_assert_eq(info.handles, 0);
        cr_assert_eq(info.mode, 0600);

        run_ctl(&r, "list");
        expect_ok(&r, "list");
        cr_assert_not_null(strstr(r.out, "NAME"), "no header: %s", r.out);
        cr_assert_not_null(strstr(r.out, "ctlseg"), "name missing from list: %s", r.out);
        cr_assert_not_null(strstr(r.out, " 4K "), "no human size: %s", r.out);
        result_free(&r);
        run_ctl(&r, "list", "--bytes");
        expect_ok(&r, "list --bytes");
        cr_assert_not_null(strstr(r.out, " 4096 "), "%s", r.out);
        cr_assert_eq(count_lines(r.out, r.out_len), 2, "header + one row: %s", r.out);
        result_free(&r);

        run_ctl(&r, "list", "--json");
        expect_ok(&r, "list --json");
        cr_assert(json_array_ok(r.out), "not a JSON array: %s", r.out);
        cr_assert_not_null(strstr(r.out, "\"name\":\"ctlseg\""), "%s", r.out);
        cr_assert_not_null(strstr(r.out, "\"size\":4096"), "%s", r.out);
        cr_assert_not_null(strstr(r.out, "\"persistent\":true"), "%s", r.out);
        result_free(&r);

        run_ctl(&r, "stat", "ctlseg");
        expect_ok(&r, "stat");
        cr_assert_not_null(strstr(r.out, "name: ctlseg\n"), "%s", r.out);
        cr_assert_not_null(strstr(r.out, "size: 4096\n"), "%s", r.out);
        cr_assert_not_null(strstr(r.out, "persistent: yes\n"), "%s", r.out);
        cr_assert_not_null(strstr(r.out, "mode: 0600\n"), "%s", r.out);
        result_free(&r);

        run_ctl(&r, "stat", "ctlseg", "--json");
        expect_ok(&r, "stat --json");
        cr_assert_eq(r.out[0], '{', "%s", r.out);
        cr_assert_not_null(strstr(r.out, "\"name\":\"ctlseg\""), "%s", r.out);
        result_free(&r);

        run_ctl(&r, "rm", "ctlseg");
        expect_ok(&r, "rm");
        result_free(&r);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "ctlseg", &info), -ENOENT);

        run_ctl(&r, "stat", "ctlseg");
        expect_fail(&r, 1, "stat after rm");
        cr_assert_eq(r.out_len, 0);
        result_free(&r);
        run_ctl(&r, "rm", "ctlseg");
        expect_fail(&r, 1, "rm twice");
        result_free(&r);

        /* An empty list is still valid JSON. */
        run_ctl(&r, "list", "--json");
        expect_ok(&r, "empty list --json");
        cr_assert(json_array_ok(r.out), "not a JSON array: %s", r.out);
        result_free(&r);
}

CHECKED_TEST(ctl, list_many_and_unlinked) {
        ipcb_shm *open_one;
        ctl_result r;
        char name[32];

        for (int i = 0; i < 150; i++) {
                snprintf(name, sizeof(name), "many-%03d", i);
                run_ctl(&r, "create", name, "1K");
                expect_ok(&r, "create");
                result_free(&r);
        }
        cr_assert_eq(ipcb_shm_open(c, "many-007", IPCB_READ_ONLY, &open_one), 0);
        run_ctl(&r, "rm", "many-007");
        expect_ok(&r, "rm");
        result_free(&r);

        run_ctl(&r, "list", "--json");
        expect_ok(&r, "list --json");
        cr_assert(json_array_ok(r.out), "not a JSON array");
        for (int i = 0; i < 150; i++) {
                char needle[64];
                snprintf(needle, sizeof(needle), "\"name\":\"many-%03d\"", i);
                const char *hit = strstr(r.out, needle);
                cr_assert_not_null(hit, "%s missing", needle);
                cr_assert_null(strstr(hit + 1, needle), "%s listed twice", needle);
        }
        cr_assert_not_null(strstr(r.out, "\"unlinked\":true"), "unlinked segment not marked");
        result_free(&r);
        run_ctl(&r, "list");
        expect_ok(&r, "list");
        cr_assert_eq(count_lines(r.out, r.out_len), 151);
        const char *row = strstr(r.out, "many-007");
        cr_assert_not_null(row);
        const char *eol = strchr(row, '\n'), *mark = strstr(row, "unlinked");
        cr_assert(mark && mark < eol, "unlinked segment not marked in the table");
        result_free(&r);

        cr_assert_eq(ipcb_shm_close(open_one), 0);
        for (int i = 0; i < 150; i++) {
                snprintf(name, sizeof(name), "many-%03d", i);
                if (i != 7)
                        cr_assert_eq(ipcb_unlink(c, name), 0);
        }
}

CHECKED_TEST(ctl, write_then_cat_binary) {
        enum { N = 10240 };
        static uint8_t data[N], big[16384];
        ctl_result r;

        random_bytes(data, N, 42);
        /* Exactly the segment's size. */
        run_ctl(&r, "create", "blob", "10240");
        expect_ok(&r, "create");
        result_free(&r);
        run_ctl_v(&r, VIA_OPTION, data, N, ARGS("write", "blob"));
        expect_ok(&r, "write");
        result_free(&r);
        run_ctl(&r, "cat", "blob");
        expect_ok(&r, "cat");
        cr_assert_eq(r.out_len, N, "cat gave %zu bytes", r.out_len);
        cr_assert(memcmp(r.out, data, N) == 0, "cat differs from what was written");
        result_free(&r);
        /* Through $IPCBROKER_SOCKET. */
        run_ctl_v(&r, VIA_ENV, NULL, 0, ARGS("cat", "blob"));
        expect_ok(&r, "cat via environment");
        cr_assert_eq(r.out_len, N);
        cr_assert(memcmp(r.out, data, N) == 0);
        result_free(&r);

        /* A larger segment: the input, then the untouched zeros. */
        run_ctl(&r, "create", "blob16", "16K");
        expect_ok(&r, "create 16K");
        result_free(&r);
        run_ctl_v(&r, VIA_OPTION, data, N, ARGS("write", "blob16"));
        expect_ok(&r, "write");
        result_free(&r);
        run_ctl(&r, "cat", "blob16");
        expect_ok(&r, "cat");
        cr_assert_eq(r.out_len, sizeof(big));
        memcpy(big, data, N);
        cr_assert(memcmp(r.out, big, sizeof(big)) == 0);
        result_free(&r);
        /* What the library sees is the same. */
        ipcb_shm *s;
        cr_assert_eq(ipcb_shm_open(c, "blob16", IPCB_READ_ONLY, &s), 0);
        cr_assert(memcmp(ipcb_shm_data(s), big, sizeof(big)) == 0);
        cr_assert_eq(ipcb_shm_close(s), 0);

        run_ctl(&r, "rm", "blob");
        expect_ok(&r, "rm");
        result_free(&r);
        run_ctl(&r, "rm", "blob16");
        expect_ok(&r, "rm");
        result_free(&r);
        run_ctl(&r, "cat", "blob");
        expect_fail(&r, -1, "cat after rm");
        cr_assert_eq(r.out_len, 0, "cat of a removed segment wrote to stdout");
        result_free(&r);
}

CHECKED_TEST(ctl, write_larger_than_segment) {
        static uint8_t data[5000];
        ctl_result r;

        random_bytes(data, sizeof(data), 7);
        run_ctl(&r, "create", "small", "4096");
        expect_ok(&r, "create");
        result_free(&r);
        run_ctl_v(&r, VIA_OPTION, data, sizeof(data), ARGS("write", "small"));
        expect_fail(&r, -1, "write of 5000 bytes into 4096");
        result_free(&r);
        /* Documented: the bytes that fit stay written. */
        run_ctl(&r, "cat", "small");
        expect_ok(&r, "cat");
        cr_assert_eq(r.out_len, 4096);
        cr_assert(memcmp(r.out, data, 4096) == 0);
        result_free(&r);
        /* One byte too many is too many. */
        run_ctl_v(&r, VIA_OPTION, data, 4097, ARGS("write", "small"));
        expect_fail(&r, -1, "write of 4097 bytes into 4096");
        result_free(&r);
        run_ctl(&r, "rm", "small");
        expect_ok(&r, "rm");
        result_free(&r);
        /* Writing to a missing segment. */
        run_ctl_v(&r, VIA_OPTION, data, 10, ARGS("write", "small"));
        expect_fail(&r, 1, "write to a missing segment");
        result_free(&r);
}

CHECKED_TEST(ctl, usage_errors) {
        ctl_result r;

        run_ctl(&r, "frobnicate");
        expect_fail(&r, 2, "unknown command");
        result_free(&r);
        run_ctl_v(&r, VIA_OPTION, NULL, 0, ARGS("--no-such-option"));
        cr_assert_eq(r.status, 2, "unknown option: exit %d", r.status);
        result_free(&r);
        run_ctl_v(&r, VIA_OPTION, NULL, 0, ARGS("list", "--bogus"));
        cr_assert_eq(r.status, 2);
        result_free(&r);
        run_ctl(&r, "create", "onlyname");
        cr_assert_eq(r.status, 2, "missing SIZE: exit %d", r.status);
        result_free(&r);
        run_ctl(&r, "cat");
        cr_assert_eq(r.status, 2);
        result_free(&r);
        /* No command at all. */
        const char *none[] = { NULL };
        run_ctl_v(&r, VIA_OPTION, NULL, 0, none);
        cr_assert_eq(r.status, 2);
        result_free(&r);

        run_ctl_v(&r, VIA_OPTION, NULL, 0, ARGS("--help"));
        expect_ok(&r, "--help");
        cr_assert_not_null(strstr(r.out, "Usage"));
        result_free(&r);
}

CHECKED_TEST(ctl, bad_sizes_and_modes) {
        static const char *const bad[] = { "abc", "", "-5", "0", "1P", "4KB", "0x10",
                                           "99999999999999999999", "18446744073709551615G",
                                           "1T", "2G" /* above the daemon's 1 GiB default */ };
        ipcb_object_info info = IPCB_OBJECT_INFO_INIT;
        ctl_result r;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                run_ctl(&r, "create", "sized", bad[i]);
                expect_fail(&r, -1, bad[i]);
                result_free(&r);
                cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sized", &info), -ENOENT,
                             "size '%s' created something", bad[i]);
        }
        run_ctl(&r, "create", "sized", "4K");
        expect_ok(&r, "4K");
        result_free(&r);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sized", &info), 0);
        cr_assert_eq(info.size, 4096);
        /* Existing name. */
        run_ctl(&r, "create", "sized", "8K");
        expect_fail(&r, 1, "create existing");
        result_free(&r);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "sized", &info), 0);
        cr_assert_eq(info.size, 4096, "a failed create changed the segment");
        run_ctl(&r, "rm", "sized");
        expect_ok(&r, "rm");
        result_free(&r);

        run_ctl(&r, "create", "moded", "1", "--mode", "0644", "--growable");
        expect_ok(&r, "create --mode 0644 --growable");
        result_free(&r);
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "moded", &info), 0);
        cr_assert_eq(info.mode, 0644);
        cr_assert_eq(info.size, 1);
        cr_assert(info.flags & IPCB_SHM_GROWABLE);
        cr_assert(info.flags & IPCB_SHM_PERSISTENT);
        run_ctl(&r, "rm", "moded");
        expect_ok(&r, "rm");
        result_free(&r);
        static const char *const bad_modes[] = { "0999", "01777", "rw", "" };
        for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
                run_ctl(&r, "create", "moded", "4096", "--mode", bad_modes[i]);
                expect_fail(&r, -1, bad_modes[i]);
                result_free(&r);
        }
        cr_assert_eq(ipcb_stat(c, IPCB_KIND_SHM, "moded", &info), -ENOENT);
        /* Bad names are refused, one line. */
        run_ctl(&r, "create", "a/b", "4096");
        expect_fail(&r, 2, "bad name");
        result_free(&r);
}

CHECKED_TEST(ctl, socket_selection) {
        ctl_result r;

        /* --socket after the command. */
        run_ctl_v(&r, NO_SOCKET, NULL, 0, ARGS("create", "sock1", "4096", "--socket", d.sock));
        expect_ok(&r, "--socket after the command");
        result_free(&r);
        /* $IPCBROKER_SOCKET alone. */
        run_ctl_v(&r, VIA_ENV, NULL, 0, ARGS("list"));
        expect_ok(&r, "list via environment");
        cr_assert_not_null(strstr(r.out, "sock1"));
        result_free(&r);
        run_ctl_v(&r, VIA_ENV, NULL, 0, ARGS("rm", "sock1"));
        expect_ok(&r, "rm via environment");
        result_free(&r);
        /* No broker there. */
        run_ctl_v(&r, NO_SOCKET, NULL, 0, ARGS("--socket", "/nonexistent/ipcb.sock", "list"));
        expect_fail(&r, 1, "no broker");
        cr_assert_eq(r.out_len, 0);
        result_free(&r);
}
