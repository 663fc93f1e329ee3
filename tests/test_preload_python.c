/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test_preload_python.c: Python's multiprocessing, unchanged, under
 * ipcbroker-run against a real ipcbrokerd: shared_memory.SharedMemory
 * (create, attach by name from another process, unlink) and
 * multiprocessing.Lock / Semaphore (sem_open underneath), with both the
 * fork and the spawn start methods.  The scripts check with ipcbrokerctl
 * list that the objects are the broker's while they live; the test checks
 * that none is left and that nothing appeared in /dev/shm.  Skipped when
 * there is no python3. */
#include "test_preload.h"

#include "ipcbroker.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <sys/stat.h>

static ipcbd d;
static ipcb_client *c;
static char *kernel_before;

#define PYTHON "/usr/bin/python3"

static void setup(void) {
        fixture_begin(&d, NULL);
        cr_assert_eq(ipcb_connect(d.sock, &c), 0);
        kernel_before = kernel_ipc_snapshot();
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

TestSuite(preload_python, .init = setup, .fini = teardown, .timeout = 120);
#define CHECKED_TEST(name) FIXTURE_TEST(preload_python, name, &d, release)

static const char script[] =
        "import os, subprocess, sys\n"
        "from multiprocessing import get_context, shared_memory\n"
        "ctl, sock, method = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "def listing():\n"
        "    return subprocess.run([ctl, '--socket', sock, 'list'], capture_output=True,\n"
        "                          text=True, check=True).stdout\n"
        "def attach(name):\n"
        "    s = shared_memory.SharedMemory(name=name)\n"
        "    assert s.size >= 1000, s.size\n"
        "    assert bytes(s.buf[:5]) == b'hello'\n"
        "    s.buf[5:10] = b'world'\n"
        "    s.close()\n"
        "def try_lock(lock, want):\n"
        "    got = lock.acquire(timeout=0.3)\n"
        "    assert got == want, (got, want)\n"
        "    if got:\n"
        "        lock.release()\n"
        "def take_two(sem):\n"
        "    assert sem.acquire(timeout=5) and sem.acquire(timeout=5)\n"
        "    assert not sem.acquire(timeout=0.1)\n"
        "def run(ctx, fn, *args):\n"
        "    p = ctx.Process(target=fn, args=args)\n"
        "    p.start()\n"
        "    p.join(30)\n"
        "    assert p.exitcode == 0, p.exitcode\n"
        "if __name__ == '__main__':\n"
        "    ctx = get_context(method)\n"
        "    shm = shared_memory.SharedMemory(create=True, size=1000)\n"
        "    assert 'preload.shm.' + shm.name.lstrip('/') in listing(), listing()\n"
        "    shm.buf[:5] = b'hello'\n"
        "    run(ctx, attach, shm.name)\n"
        "    assert bytes(shm.buf[:10]) == b'helloworld'\n"
        "    shm.close()\n"
        "    shm.unlink()\n"
        "    assert 'preload.shm.' not in listing(), listing()\n"
        "    lock = ctx.Lock()\n"
        "    sem = ctx.Semaphore(2)\n"
        "    if method != 'fork':  # named while they live (fork unlinks at once)\n"
        "        assert listing().count('preload.sem.mp-') == 2, listing()\n"
        "    lock.acquire()\n"
        "    run(ctx, try_lock, lock, False)\n"
        "    lock.release()\n"
        "    run(ctx, try_lock, lock, True)\n"
        "    run(ctx, take_two, sem)\n"
        "    assert sem.get_value() == 0\n"
        "    sem.release()\n"
        "    assert sem.get_value() == 1\n"
        "    print('python ok', method)\n";

static void run_script(const char *method, const char *const *opts) {
        char path[160];
        FILE *f;

        if (access(PYTHON, X_OK) != 0)
                cr_skip_test("no " PYTHON);
        snprintf(path, sizeof(path), "%s/mp.py", d.dir);
        cr_assert_not_null(f = fopen(path, "w"));
        fputs(script, f);
        cr_assert_eq(fclose(f), 0);
        cr_assert_eq(preload_wait(preload_spawn(d.sock, 0, opts,
                                                ARGV(PYTHON, path, IPCBROKERCTL_PATH, d.sock,
                                                     method),
                                                NULL),
                                  60000),
                     0, "the script under ipcbroker-run (%s)", method);
        unlink(path);
}

static int count_cb(const ipcb_object_info *info, void *arg) {
        cr_log_info("left: %s", info->name);
        ++*(int *)arg;
        return 0;
}

static void assert_broker_empty(void) {
        int count = 0;
        for (int i = 0; i < 200; i++) {
                count = 0;
                cr_assert_eq(ipcb_list(c, 0, count_cb, &count), 0);
                if (count == 0)
                        break;
                usleep(10000);
        }
        cr_assert_eq(count, 0, "objects left in the broker");
}

CHECKED_TEST(fork_start_method) {
        run_script("fork", NULL);
        assert_broker_empty();
}

CHECKED_TEST(spawn_start_method) {
        run_script("spawn", NULL);
        assert_broker_empty();
}

CHECKED_TEST(spawn_transient) {
        run_script("spawn", ARGV("--transient"));
        assert_broker_empty();
}
