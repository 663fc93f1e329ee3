# SPDX-License-Identifier: LGPL-2.1-or-later
# test_semaphores.py: semaphores through the Python binding: plain and undo
# handles, timeouts, release(n), errors, the GIL released while waiting,
# close() refused while another thread waits, and kill -9 of a holder.
from __future__ import annotations

import contextlib
import errno
import threading
import time

import pytest

import ipcbroker
from conftest import Child, wait_until


def test_plain_semaphore(client):
    with contextlib.closing(client.sem_create("s", 2, max=3)) as s:
        assert s.value == 2 and not s.undo
        assert s.acquire() and s.acquire()
        assert not s.acquire(blocking=False)
        t0 = time.monotonic()
        assert not s.acquire(timeout=0.1)
        assert time.monotonic() - t0 >= 0.09
        s.release(3)
        assert s.value == 3
        with pytest.raises(OSError) as e:
            s.release()
        assert e.value.errno == errno.EOVERFLOW and s.value == 3
        with pytest.raises(OverflowError if False else OSError):
            s.release(1 << 40)
        assert s.value == 3
        with pytest.raises(ValueError):
            s.release(0)
        with s:  # threading.Semaphore style
            assert s.value == 2
        assert s.value == 3
        with contextlib.closing(client.sem_open("s")) as t:
            assert t.acquire() and s.value == 2
            t.release()
        assert s.held == 0
        assert s.info.mode == 0o600


def test_semaphore_errors(client):
    with pytest.raises(FileNotFoundError):
        client.sem_open("none")
    s = client.sem_create("e", 0)
    with pytest.raises(FileExistsError):
        client.sem_create("e", 0)
    with pytest.raises(OSError) as e:
        client.sem_create("big", 5, max=4)
    assert e.value.errno == errno.EINVAL
    s.unlink()
    with pytest.raises(FileNotFoundError):
        client.sem_unlink("e")
    s.close()
    s.close()
    with pytest.raises(ValueError):
        s.acquire()
    with pytest.raises(ValueError):
        s.release()


def test_undo_tokens_come_back_on_close(client):
    s = client.sem_create("u", 3, persistent=True)
    u = client.sem_open("u", undo=True)
    assert u.acquire() and u.acquire()
    assert u.held == 2 and s.value == 1
    u.release()
    assert u.held == 1
    u.close()
    assert wait_until(lambda: s.value == 3)
    s.unlink()
    s.close()


def test_release_undo_is_owed_back(client):
    s = client.sem_create("owe", 0, persistent=True)
    with pytest.raises(ValueError):
        s.release_undo(1)  # a plain handle cannot owe

    def giver(conn):
        c = ipcbroker.Client()
        u = c.sem_open("owe", undo=True)
        u.release_undo(2)
        conn.send(("owed", u.owed, u.held))
        conn.recv(30)  # killed meanwhile

    ch = Child(giver)
    assert ch.recv() == ("owed", 2, 0)
    assert s.value == 2
    assert s.acquire(timeout=1)  # someone takes one meanwhile
    ch.kill()
    assert wait_until(lambda: s.value == 0), s.value  # 1 - 2, never below 0
    u = client.sem_open("owe", undo=True)
    with pytest.raises(OSError) as e:
        u.release_undo(70000)
    assert e.value.errno == errno.EOVERFLOW and u.owed == 0
    u.close()
    s.unlink()
    s.close()


def test_acquire_releases_the_gil(client):
    """A thread blocked in acquire() (one library call of up to 3 s, since
    it is not the main thread) must let the main thread run Python meanwhile.
    (Were the GIL held, the main thread would run again only after the wait
    timed out, and find the thread gone.)"""
    s = client.sem_create("g", 0)
    got = []
    t = threading.Thread(target=lambda: got.append(s.acquire(timeout=3)))
    t.start()
    spins = 0
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        spins += 1  # pure Python: needs the GIL
    assert spins > 1000 and t.is_alive() and not got
    # close() is refused while the thread is inside a call on the handle
    with pytest.raises(OSError) as e:
        s.close()
    assert e.value.errno == errno.EBUSY and not s.closed
    s.release()
    t.join(5)
    assert got == [True]
    s.close()


def test_timed_acquire_releases_the_gil_in_main_thread_slices(client):
    s = client.sem_create("g2", 0)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.005)
    t = threading.Thread(target=ticker)
    t.start()
    try:
        assert not s.acquire(timeout=0.5)  # main thread: sliced waits
    finally:
        stop.set()
        t.join()
    assert len(ticks) > 10  # ~100 on a quiet machine; with the GIL held: 3-4
    s.close()


def test_kill_9_holder_gives_back_undo_tokens_and_transient_objects(client):
    s = client.sem_create("k", 2, persistent=True)

    def holder(conn):
        c = ipcbroker.Client()
        u = c.sem_open("k", undo=True)
        assert u.acquire() and u.acquire()
        seg = c.create("transient", 4096)
        seg.buf[0] = 1
        conn.send(("held", u.held))
        conn.recv(30)  # killed meanwhile

    ch = Child(holder)
    assert ch.recv() == ("held", 2)
    assert s.value == 0 and client.exists("transient")
    assert client.stat("k", ipcbroker.KIND_SEM).sem_undo_held == 2
    ch.kill()
    assert wait_until(lambda: s.value == 2), s.value
    assert wait_until(lambda: not client.exists("transient"))
    s.unlink()
    s.close()


def test_undo_handle_serves_one_call_at_a_time(client):
    s = client.sem_create("one", 0)
    u = client.sem_open("one", undo=True)

    def waiter():
        # It re-enters the library every slice of its wait; our probe may
        # be inside at that moment, and then it is the one refused: again.
        while True:
            try:
                return u.acquire(timeout=2)
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise

    t = threading.Thread(target=waiter)
    t.start()
    try:
        assert wait_until(lambda: u._users, 2)
        # once the thread is inside the library's wait, our call is refused;
        # until then it gets in first and finds no token
        busy = None
        end = time.monotonic() + 5
        while busy is None and time.monotonic() < end:
            try:
                assert u.acquire(blocking=False) is False
                time.sleep(0.02)
            except OSError as e:
                busy = e.errno
        assert busy == errno.EBUSY
    finally:
        s.release()
        t.join()
    assert u.held == 1
    u.close()
    s.close()


def test_waiter_across_processes(client):
    s = client.sem_create("x", 0)

    def waiter(conn):
        c = ipcbroker.Client()
        w = c.sem_open("x")
        conn.send("ready")
        ok = w.acquire(timeout=10)
        w.close()
        c.close()
        return ok

    ch = Child(waiter)
    assert ch.recv() == "ready"
    time.sleep(0.05)
    s.release()
    assert ch.result() is True
    s.close()


class _Interrupted(Exception):
    pass


def test_signal_handler_runs_during_a_main_thread_wait(client):
    """The library's waits do not end on a signal; the binding waits in
    slices on the main thread so that handlers (KeyboardInterrupt) run."""
    import os
    import signal

    s = client.sem_create("sig", 0)
    a = client.create("siglock", 64)
    b = client.open("siglock")

    def handler(signum, frame):
        raise _Interrupted()
    old = signal.signal(signal.SIGUSR1, handler)
    try:
        for wait in (s.acquire, b.lock):
            timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
            t0 = time.monotonic()
            timer.start()
            with a.lock():
                with pytest.raises(_Interrupted):
                    wait()  # no timeout: would wait forever
            timer.join()
            assert time.monotonic() - t0 < 2
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert s.value == 0
    s.close()
    b.close()
    a.close()


def test_plain_handle_works_in_a_forked_child_undo_does_not(client):
    """As in C: a child may use its parent's plain handles (the page is
    shared); an undo handle inherited across fork is refused (ECHILD);
    closing inherited handles in the child sends nothing."""
    import pickle
    from conftest import run_as

    s = client.sem_create("inh", 1)
    u = client.sem_open("inh", undo=True)

    def child():
        out = [s.acquire(timeout=1), s.value]
        try:
            u.acquire(blocking=False)
        except OSError as e:
            out.append(errno.errorcode[e.errno])
        s.close()
        u.close()
        return out
    assert run_as(None, child) == [True, 0, "ECHILD"]
    assert s.value == 0  # the child's token stays taken: a plain handle
    s.release()
    assert u.acquire(timeout=1) and u.held == 1  # the parent's undo handle is intact
    u.release()
    t = pickle.loads(pickle.dumps(s))  # reopened by name (default client)
    assert t is not s and t.name == "inh" and t.value == 1
    t.close()
    u.close()
    s.close()
