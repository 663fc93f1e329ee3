# SPDX-License-Identifier: LGPL-2.1-or-later
# test_numpy.py: numpy arrays over segment buffers are views, not copies: a
# write through one process's array is seen through another's, also across
# uids; read-only handles give read-only arrays; no view outlives close().
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import ipcbroker
from conftest import NOBODY, Child, require_root


def test_frombuffer_is_zero_copy(client):
    with client.create("np", 8 * 1024) as s:
        a = np.frombuffer(s.buf, dtype=np.float64)
        assert a.shape == (1024,) and a.flags.writeable
        assert not a.flags.owndata
        a[:] = np.arange(1024)
        # the array's memory is the segment's: the bytes changed in place
        assert bytes(s.buf[8:16]) == np.float64(1.0).tobytes()
        s.buf[0:8] = np.float64(-5.0).tobytes()
        assert a[0] == -5.0
        with pytest.raises(BufferError):
            s.close()
        del a
    assert s.closed


def test_readonly_handle_gives_readonly_array(client):
    with client.create("npr", 64) as w, client.open("npr", readonly=True) as r:
        a = np.frombuffer(r.buf, dtype=np.uint8)
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 1
        with pytest.raises(ValueError):
            a.setflags(write=True)
        w.buf[0] = 9
        assert a[0] == 9
        del a


def _other_process(conn, uid_checks):
    c = ipcbroker.Client()
    sem = c.sem_open("np-turn")
    with c.open("np-x") as s:
        a = np.ndarray((4, 4), dtype=np.int32, buffer=s.buf)
        conn.send(("seen", a.sum().item()))
        sem.acquire(timeout=10)       # wait for the parent's write
        conn.send(("seen", a[3, 3].item()))
        a[0, 0] = 1000                 # write back through our array
        del a
    sem.close()
    c.close()


@pytest.mark.parametrize("uid", [None, NOBODY], ids=["same-uid", "uid-65534"])
def test_write_through_one_array_seen_by_the_other_process(client, uid):
    if uid is not None:
        require_root()
    with client.create("np-x", 64, mode=0o666) as s, \
            contextlib.closing(client.sem_create("np-turn", 0, mode=0o666)) as turn:
        a = np.ndarray((4, 4), dtype=np.int32, buffer=s.buf)
        a[:] = 1
        ch = Child(_other_process, None, uid=uid)
        assert ch.recv() == ("seen", 16)
        a[3, 3] = 77
        turn.release()
        assert ch.recv() == ("seen", 77)
        ch.result()
        assert a[0, 0] == 1000
        del a
