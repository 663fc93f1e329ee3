#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench.py: the Python binding against the standard library's shared memory
# and semaphore, and against the C library it wraps; see docs/performance.md.
"""Benchmark of the ipcbroker Python package.

    python3 bench/python/bench.py [--build build] [--quick] [--json]

Starts the build's ipcbrokerd on a temporary socket (and, for the C
figures, runs the build's ipcb_bench --only ... --json, which starts its
own).  Method as ipcb_bench's: a batch size per row calibrated to ~2 ms,
repetitions interleaved over the rows, median and p99 of the per-operation
time of every batch; ratios are medians over medians.  Targets are not
tests: a MISS still exits 0."""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import resource_tracker
from multiprocessing import shared_memory as std_shm


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "..", "build"))
    p.add_argument("--quick", action="store_true", help="1 rep x 20 batches of ~0.5 ms")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--batch-ms", type=float, default=2.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.reps, a.batches, a.batch_ms = 1, 20, 0.5
    a.build = os.path.abspath(a.build)
    return a


def start_broker(build: str) -> tuple[subprocess.Popen, str]:
    d = tempfile.mkdtemp(prefix="ipcbpybench.")
    sock = os.path.join(d, "b.sock")
    proc = subprocess.Popen([os.path.join(build, "daemon", "ipcbrokerd"), "--socket", sock],
                            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, d


def c_figures(build: str, quick: bool) -> dict[str, dict]:
    exe = os.path.join(build, "bench", "ipcb_bench")
    if not os.access(exe, os.X_OK):
        return {}
    args = [exe, "--only", "open,sem.pair,lock.pair", "--json"]
    args += ["--quick"] if quick else ["--reps", "3", "--batches", "100"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return {"c." + r["key"]: r for r in json.loads(out)["rows"]}


class Row:
    def __init__(self, key: str, name: str, op) -> None:
        self.key, self.name, self.op = key, name, op
        self.n = 1
        self.samples: list[float] = []
        self.rep_medians: list[float] = []

    def batch(self) -> float:
        op = self.op
        t0 = time.perf_counter_ns()
        for _ in range(self.n):
            op()
        return (time.perf_counter_ns() - t0) / self.n

    def calibrate(self, batch_ns: float) -> None:
        """N such that a batch takes about batch_ns, from the median time of
        small groups of operations (a slow call on a noisy machine must not
        decide it)."""
        op = self.op
        k = 1
        while True:  # a group of k operations: at least ~20 us
            t0 = time.perf_counter_ns()
            for _ in range(k):
                op()
            if time.perf_counter_ns() - t0 >= 20e3 or k >= 1 << 20:
                break
            k *= 2
        groups = []
        for _ in range(31):
            t0 = time.perf_counter_ns()
            for _ in range(k):
                op()
            groups.append((time.perf_counter_ns() - t0) / k)
        self.n = max(1, int(batch_ns / statistics.median(groups)))


def quantile(v: list[float], q: float) -> float:
    s = sorted(v)
    i = max(0, min(len(s) - 1, int(-(-q * len(s) // 1)) - 1))
    return s[i]


def main() -> int:
    a = parse()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "python"))
    os.environ.setdefault("IPCBROKER_LIBRARY", os.path.join(a.build, "client",
                                                            "libipcbroker.so"))
    proc, d = start_broker(a.build)
    os.environ["IPCBROKER_SOCKET"] = os.path.join(d, "b.sock")
    import ipcbroker
    from ipcbroker import _lib
    from ipcbroker import shared_memory as ipcb_shm
    try:
        end = time.monotonic() + 10
        while True:
            try:
                c = ipcbroker.Client()
                break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise
                time.sleep(0.01)
        with contextlib.ExitStack() as stack:
            seg = c.create("bench.seg", 4096, persistent=True)
            stack.callback(c.unlink, "bench.seg")
            seg.close()
            std = std_shm.SharedMemory(create=True, size=4096)
            stack.callback(std.unlink)
            stack.callback(std.close)
            sem = c.sem_create("bench.sem", 1)
            stack.callback(sem.close)
            mps = multiprocessing.Semaphore(1)
            lseg = c.create("bench.lock", 4096)
            stack.callback(lseg.close)
            name = b"bench.seg"
            ret = ctypes.c_void_p()
            ref = ctypes.byref(ret)
            h = c._h
            op_raw, cl_raw = _lib.ipcb_shm_open, _lib.ipcb_shm_close

            def open_ctypes():
                op_raw(h, name, 2, ref)
                cl_raw(ret)

            sh = sem._h
            ta, rl = _lib.sem_try_acquire_fast, _lib.sem_release_fast

            def sem_ctypes():
                ta(sh, 0)
                rl(sh, 1)

            def std_attach():
                std_shm.SharedMemory(std.name).close()

            def sem_py():
                sem.acquire()
                sem.release()

            def sem_mp():
                mps.acquire()
                mps.release()

            def lock_py():
                with lseg.lock():
                    pass

            rows = [
                Row("py.open", "Client.open(name) + Segment.close(), 4 KiB (library + own mmap)",
                    lambda: c.open("bench.seg").close()),
                Row("py.open.ctypes", "ipcb_shm_open + ipcb_shm_close called through ctypes, no Segment",
                    open_ctypes),
                Row("py.shm.dropin", "ipcbroker.shared_memory.SharedMemory(name) + close()",
                    lambda: ipcb_shm.SharedMemory("bench.seg").close()),
                Row("std.shm.attach", "(ref) multiprocessing.shared_memory.SharedMemory(name) + close()",
                    std_attach),
                Row("py.sem", "Semaphore.acquire() + release(1), plain handle", sem_py),
                Row("py.sem.ctypes", "ipcb_sem_try_acquire(s, 0) + ipcb_sem_release(s, 1) through ctypes",
                    sem_ctypes),
                Row("mp.sem", "(ref) multiprocessing.Semaphore acquire() + release()", sem_mp),
                Row("py.lock", "with seg.lock(): pass", lock_py),
                Row("py.noop", "(ref) a Python function call that does nothing", lambda: None),
            ]
            # the standard module started its resource tracker (a new python
            # process) at the create above: let it finish starting first
            resource_tracker.ensure_running()
            time.sleep(0.3)
            for r in rows:
                r.calibrate(a.batch_ms * 1e6)
            for _ in range(a.reps):
                for r in rows:
                    r.batch()  # warm-up, not counted: the first row after
                    # non-broker rows otherwise pays for the broker's wake-up
                    s = [r.batch() for _ in range(a.batches)]
                    r.samples += s
                    r.rep_medians.append(statistics.median(s))
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    if rc != 0:
        print(f"ipcbrokerd exited {rc}", file=sys.stderr)
        return 1

    res = {r.key: dict(key=r.key, name=r.name, median_ns=statistics.median(r.samples),
                       p99_ns=quantile(r.samples, 0.99), n=r.n,
                       rep_min_ns=min(r.rep_medians), rep_max_ns=max(r.rep_medians))
           for r in rows}
    res.update(c_figures(a.build, a.quick))

    def ratio(x: str, y: str) -> float | None:
        return res[x]["median_ns"] / res[y]["median_ns"] if x in res and y in res else None

    ratios = []

    def add(label: str, x: str, y: str, goal: float | None = None, strict: bool = False):
        r = ratio(x, y)
        if r is None:
            return
        verdict = ""
        if goal is not None:
            ok = r < goal if strict else r <= goal
            judged = "not judged (--quick)" if a.quick else "PASS" if ok else "MISS"
            verdict = f", target {'<' if strict else '<='} {goal:.2f}: {judged}"
        ratios.append(dict(label=label, x=x, y=y, ratio=r, goal=goal, text=f"- {label}: "
                           f"{x} / {y} = {r:.2f}{verdict}"))

    add("open+map+close, brokered vs the standard library", "py.open", "std.shm.attach", 1.2)
    add("the same through the SharedMemory drop-in", "py.shm.dropin", "std.shm.attach", 1.2)
    add("(ref) the C library alone vs the standard library", "c.open", "std.shm.attach")
    add("(ref) Python binding overhead on open+close", "py.open", "c.open")
    add("(ref) ctypes alone on open+close", "py.open.ctypes", "c.open")
    add("acquire+release vs multiprocessing.Semaphore", "py.sem", "mp.sem", 1.0, strict=True)
    add("(ref) acquire+release, Python method vs the C library", "py.sem", "c.sem.pair")
    add("(ref) acquire+release, bare ctypes vs the C library", "py.sem.ctypes", "c.sem.pair")
    add("(ref) lock+unlock, Python vs the C library", "py.lock", "c.lock.pair")
    per_call = None
    if "c.sem.pair" in res:
        per_call = dict((k, (res[k]["median_ns"] - res["c.sem.pair"]["median_ns"]) / 2)
                        for k in ("py.sem", "py.sem.ctypes"))

    if a.json:
        print(json.dumps(dict(reps=a.reps, batches=a.batches, rows=list(res.values()),
                              ratios=ratios, per_call_overhead_ns=per_call), indent=1))
        return 0
    print(f"Python {sys.version.split()[0]} ({sys.executable}), library {_lib.LIBRARY_PATH}")
    print(f"{a.reps} reps x {a.batches} batches of ~{a.batch_ms} ms\n")
    print("| key | benchmark | median ns | p99 ns | rep medians min..max ns | N |")
    print("|---|---|---:|---:|---:|---:|")
    for r in res.values():
        print(f"| {r['key']} | {r['name']} | {r['median_ns']:.0f} | {r['p99_ns']:.0f} | "
              f"{r['rep_min_ns']:.0f}..{r['rep_max_ns']:.0f} | {r['n']} |")
    print()
    for r in ratios:
        print(r["text"])
    if per_call:
        print(f"- binding overhead per call over C (acquire+release: half the difference): "
              f"Semaphore methods {per_call['py.sem']:.0f} ns, bare ctypes "
              f"{per_call['py.sem.ctypes']:.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
