# SPDX-License-Identifier: LGPL-2.1-or-later
# conftest.py: the pytest fixture that runs a real ipcbrokerd for each test,
# with the checks the C harness makes at the end of every test (the daemon's
# fds back to idle, the test process's fds back, a clean exit), and helpers
# to run code in a forked child of another uid.
"""Fixtures for the ipcbroker Python tests.

Environment (set by ctest, see python/CMakeLists.txt):
  IPCBROKERD         the ipcbrokerd to start
  IPCBROKER_LIBRARY  the libipcbroker.so to load
  IPCB_PY_LAYOUT     the layout helper (test_layout.py)
"""
from __future__ import annotations

import ctypes
import gc
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # python/: the package of this tree

import ipcbroker  # noqa: E402

NOBODY = 65534
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _fds(pid: int | str = "self") -> list[str]:
    return os.listdir(f"/proc/{pid}/fd")


def _fd_targets(pid: int | str) -> str:
    out = []
    for fd in sorted(_fds(pid), key=int):
        try:
            out.append(f"  {fd} -> {os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return "\n".join(out)


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.002)


class Broker:
    """A private ipcbrokerd (see the module docstring)."""

    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.path = os.environ.get("IPCBROKERD")
        if not self.path:
            pytest.fail("IPCBROKERD is not set (run these tests through ctest)")
        self.dir = tempfile.mkdtemp(prefix="ipcbpy.")
        os.chmod(self.dir, 0o755)  # clients of any uid reach the socket
        self.sock = os.path.join(self.dir, "ipcb.sock")
        self.log = os.path.join(self.dir, "log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [self.path, "--socket", self.sock] + (extra_args or []),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
                preexec_fn=lambda: _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL))
        self.pid = self.proc.pid
        end = time.monotonic() + 10
        while True:  # ready when a client can connect and say HELLO
            try:
                probe = ipcbroker.Client(self.sock)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    self.proc.kill()
                    self.proc.wait()
                    pytest.fail(f"ipcbrokerd did not start: {self.read_log()}")
                time.sleep(0.01)
        self.base_fds = len(_fds(self.pid)) - 1  # the probe is the only connection
        probe.close()
        assert self.wait_idle(), "daemon did not drop the probe connection"

    def read_log(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return "(no log)"

    def fd_count(self) -> int:
        return len(_fds(self.pid))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return wait_until(lambda: self.fd_count() == self.base_fds, timeout)

    def stop(self) -> str | None:
        """SIGTERM; returns why it failed, or None (exit status 0)."""
        why = None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(5)
            if rc != 0:
                why = f"ipcbrokerd exited with status {rc}"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            why = "ipcbrokerd did not exit within 5 s of SIGTERM"
        shutil.rmtree(self.dir, ignore_errors=True)
        return why


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch):
    """A fresh ipcbrokerd; IPCBROKER_SOCKET points at it.  At the end the test
    must have released everything: the daemon's fd count is back to idle
    (5 s), the test process's fd count is back (1 s), and the daemon exits 0
    on SIGTERM."""
    gc.collect()
    self_fds = len(_fds())
    b = Broker()
    monkeypatch.setenv("IPCBROKER_SOCKET", b.sock)
    ipcbroker.close_default_client()
    yield b
    ipcbroker.close_default_client()
    gc.collect()
    problems = []
    if not b.wait_idle():
        problems.append(f"daemon fds {b.fd_count()}, idle {b.base_fds}:\n{_fd_targets(b.pid)}")
    if not wait_until(lambda: len(_fds()) == self_fds, 1.0):
        problems.append(f"test process fds {len(_fds())}, expected {self_fds}:\n"
                        f"{_fd_targets('self')}")
    why = b.stop()
    if why:
        problems.append(why + "\n" + b.read_log())
    if problems:
        pytest.fail("fixture checks failed:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def client(broker: Broker):
    """A Client of the test's broker, closed at the end."""
    c = ipcbroker.Client()
    yield c
    c.close()


def _become(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


class Child:
    """A forked child, optionally of another uid, running fn(conn) where conn
    talks to the parent: conn.send(obj) / conn.recv(timeout)."""

    def __init__(self, fn: Callable[..., Any], *args: Any, uid: int | None = None) -> None:
        p2c_r, p2c_w = os.pipe2(os.O_CLOEXEC)
        c2p_r, c2p_w = os.pipe2(os.O_CLOEXEC)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 0
            try:
                os.close(p2c_w)
                os.close(c2p_r)
                _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                if uid is not None:
                    _become(uid)
                self._r, self._w = p2c_r, c2p_w
                result = fn(self, *args)
                self.send(("result", result))
            except BaseException as e:  # noqa: BLE001
                try:
                    self.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
                except BaseException:  # noqa: BLE001
                    pass
                code = 1
            os._exit(code)
        os.close(p2c_r)
        os.close(c2p_w)
        self.pid = pid
        self._r, self._w = c2p_r, p2c_w
        self.status: int | None = None

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj)
        os.write(self._w, len(data).to_bytes(4, "little") + data)

    def recv(self, timeout: float = 10.0) -> Any:
        def read(n: int) -> bytes:
            buf = b""
            end = time.monotonic() + timeout
            while len(buf) < n:
                left = end - time.monotonic()
                if left <= 0 or not select.select([self._r], [], [], left)[0]:
                    raise TimeoutError("no message from the other process")
                chunk = os.read(self._r, n - len(buf))
                if not chunk:
                    raise EOFError("the other process is gone")
                buf += chunk
            return buf
        n = int.from_bytes(read(4), "little")
        return pickle.loads(read(n))

    def result(self, timeout: float = 10.0) -> Any:
        """Wait for fn's return value (re-raising its failure) and reap."""
        while True:
            kind, value = self.recv(timeout)
            if kind == "result":
                break
            if kind == "error":
                self.wait()
                raise AssertionError("child failed: " + value)
        self.wait()
        return value

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.wait()

    def wait(self, timeout: float = 10.0) -> int:
        if self.status is None:
            end = time.monotonic() + timeout
            while True:
                pid, st = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.status = st
                    break
                if time.monotonic() > end:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    raise TimeoutError("child did not exit")
                time.sleep(0.002)
            os.close(self._r)
            os.close(self._w)
        return self.status


def run_as(uid: int | None, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
    """fn(*args) in a forked child of `uid` (None: ours); its return value."""
    return Child(lambda _conn, *a: fn(*a), *args, uid=uid).result(timeout)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (to switch to uid 65534)")
