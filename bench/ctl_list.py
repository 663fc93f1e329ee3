#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# ctl_list.py: what `ipcbrokerctl list` (the table: owner names, human
# sizes, column widths) costs against `list --json` for many objects.  The
# table must cost at most 2x the JSON.  Starts the ipcbrokerd built in
# BUILD on a temporary socket, fills it through libipcbroker (ctypes) with
# segments and semaphores, and times both commands alternately, keeping
# each one's best of several runs (only the ratio of one run means
# anything on a shared machine).
#
#   python3 bench/ctl_list.py [--build build] [--objects 10000] [--runs 7]
# Exit status: 0 when the ratio is <= 2, 1 otherwise.
import argparse
import ctypes
import os
import resource
import subprocess
import sys
import tempfile
import time


class SemOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("mode", ctypes.c_uint),
                ("flags", ctypes.c_uint), ("max", ctypes.c_uint)]


class ShmOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("mode", ctypes.c_uint),
                ("flags", ctypes.c_uint)]


PERSISTENT = 0x1


def fill(lib, sock, objects):
    c = ctypes.c_void_p()
    if lib.ipcb_connect(sock.encode(), ctypes.byref(c)) < 0:
        sys.exit("connect failed")
    sem_o = SemOptions(ctypes.sizeof(SemOptions), 0o600, PERSISTENT, 0)
    shm_o = ShmOptions(ctypes.sizeof(ShmOptions), 0o644, PERSISTENT)
    h = ctypes.c_void_p()
    # A segment costs the broker 3 fds, a semaphore 1: mostly semaphores,
    # so that 10k objects fit in RLIMIT_NOFILE.
    for i in range(objects):
        if i % 4 == 0:
            r = lib.ipcb_shm_create(c, b"bench.seg.%06d" % i, ctypes.c_size_t(4096 + i),
                                    ctypes.byref(shm_o), ctypes.byref(h))
            close = lib.ipcb_shm_close
        else:
            r = lib.ipcb_sem_create(c, b"bench.sem.%06d" % i, 1, ctypes.byref(sem_o),
                                    ctypes.byref(h))
            close = lib.ipcb_sem_close
        if r < 0:
            sys.exit("creating object %d: %s" % (i, lib.ipcb_strerror(r).decode()))
        close(h)
    lib.ipcb_disconnect(c)


def best(cmd, runs):
    t = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        t.append(time.perf_counter() - start)
    return min(t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    daemon = os.path.join(a.build, "daemon", "ipcbrokerd")
    ctl = os.path.join(a.build, "client", "ipcbrokerctl")
    lib = ctypes.CDLL(os.path.join(a.build, "client", "libipcbroker.so"))
    lib.ipcb_strerror.restype = ctypes.c_char_p

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "ipcb.sock")
        p = subprocess.Popen([daemon, "--socket", sock, "--max-objects", "0", "--max-fds", "0"],
                             stderr=subprocess.DEVNULL)
        try:
            for _ in range(500):
                if os.path.exists(sock):
                    break
                time.sleep(0.01)
            fill(lib, sock, a.objects)
            table = json = float("inf")
            for _ in range(a.runs):  # alternate, so that noise hits both
                table = min(table, best([ctl, "--socket", sock, "list"], 1))
                json = min(json, best([ctl, "--socket", sock, "list", "--json"], 1))
        finally:
            p.terminate()
            p.wait()
    ratio = table / json
    print("ctl list, %d objects: table %.1f ms, --json %.1f ms, ratio %.2f (limit 2.00)"
          % (a.objects, table * 1e3, json * 1e3, ratio))
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
