# SPDX-License-Identifier: LGPL-2.1-or-later
# test_access.py: two uids (root and 65534, a forked child that setuid()s):
# modes, chmod/chown/set_access, owner-checked opens, read-only handles that
# cannot be made writable, frozen segments, another uid's semaphores.
from __future__ import annotations

import contextlib
import errno
import mmap
import os

import pytest

import ipcbroker
from conftest import NOBODY, require_root, run_as


def _open_as_nobody(name, readonly=False, kind=ipcbroker.KIND_SHM):
    c = ipcbroker.Client()
    try:
        if kind == ipcbroker.KIND_SEM:
            c.sem_open(name).close()
            return "ok"
        with c.open(name, readonly=readonly) as s:
            return bytes(s.buf[:4])
    except OSError as e:
        return errno.errorcode[e.errno]
    finally:
        c.close()


def test_mode_decides_who_opens(client):
    require_root()
    with client.create("m", 4096, mode=0o600) as s:
        s.buf[:4] = b"root"
        assert run_as(NOBODY, _open_as_nobody, "m", True) == "EACCES"
        client.chmod("m", 0o644)
        assert client.stat("m").mode == 0o644
        assert run_as(NOBODY, _open_as_nobody, "m", True) == b"root"
        assert run_as(NOBODY, _open_as_nobody, "m", False) == "EACCES"
        client.set_access("m", mode=0o666)
        assert run_as(NOBODY, _open_as_nobody, "m", False) == b"root"
        with pytest.raises(ValueError):
            client.set_access("m")


def test_other_uid_cannot_manage_or_unlink(client):
    require_root()
    with client.create("own", 64, mode=0o666):
        def attempts():
            c = ipcbroker.Client()
            out = []
            for f in (lambda: c.unlink("own"), lambda: c.chmod("own", 0o777),
                      lambda: c.chown("own", NOBODY), lambda: c.freeze("own"),
                      lambda: c.quota(0)):
                try:
                    f()
                    out.append("ok")
                except PermissionError as e:
                    out.append(errno.errorcode[e.errno])
            c.close()
            return out
        assert run_as(NOBODY, attempts) == ["EPERM"] * 5
        assert client.exists("own")


def test_chown_hands_over_and_owner_checked_open(client):
    require_root()
    with client.create("given", 64, mode=0o600) as s:
        s.buf[:4] = b"gift"
        client.chown("given", NOBODY, NOBODY)
        info = client.stat("given")
        assert (info.uid, info.gid) == (NOBODY, NOBODY)

        def as_nobody():
            c = ipcbroker.Client()
            with c.open("given", owner=-1) as t:  # owned by us (nobody) now
                data = bytes(t.buf[:4])
            try:
                c.open("given", owner=0)
                refused = None
            except PermissionError as e:
                refused = errno.errorcode[e.errno]
            c.close()
            return data, refused
        assert run_as(NOBODY, as_nobody) == (b"gift", "EPERM")
        with pytest.raises(PermissionError) as e:
            client.open("given", owner=-1)  # root does not own it any more
        assert e.value.errno == errno.EPERM
        client.chown("given", uid=0, gid=-1)
        assert client.stat("given").uid == 0


def test_readonly_handle_of_other_uid_cannot_become_writable(client):
    require_root()
    with client.create("rw", 4096, mode=0o644) as s:
        def try_write():
            c = ipcbroker.Client()
            out = []
            with c.open("rw", readonly=True) as r:
                try:
                    r.buf[0] = 1
                except TypeError:
                    out.append("view-readonly")
                for attempt in (lambda: mmap.mmap(r.fd, 4096, access=mmap.ACCESS_WRITE),
                                lambda: os.open(f"/proc/self/fd/{r.fd}", os.O_RDWR),
                                lambda: os.ftruncate(r.fd, 8192)):
                    try:
                        x = attempt()
                        out.append("WROTE")
                        if isinstance(x, int):
                            os.close(x)
                    except OSError as e:
                        out.append(errno.errorcode[e.errno])
            c.close()
            return out
        res = run_as(NOBODY, try_write)
        assert res[0] == "view-readonly" and "WROTE" not in res, res
        assert s.buf[0] == 0


def test_semaphore_of_another_uid(client):
    require_root()
    s = client.sem_create("ss", 1, mode=0o600)
    assert run_as(NOBODY, _open_as_nobody, "ss", False, ipcbroker.KIND_SEM) == "EACCES"
    client.chmod("ss", 0o666, kind=ipcbroker.KIND_SEM)

    def take():
        c = ipcbroker.Client()
        with contextlib.closing(c.sem_open("ss", undo=True)) as t:
            ok = t.acquire(timeout=1)
            held = t.held
        c.close()
        return ok, held
    assert run_as(NOBODY, take) == (True, 1)
    assert s.value == 1  # the undo handle's token came back at close
    s.close()


def test_quota_exceeded_error(broker):
    """uid 65534 may create two objects on a broker started --max-objects 2."""
    require_root()
    from conftest import Broker
    b2 = Broker(["--max-objects", "2"])
    try:
        def fill():
            c = ipcbroker.Client(b2.sock)
            segs = [c.create(f"q{i}", 4096) for i in range(2)]
            try:
                c.create("q2", 4096).close()
                r = None
            except ipcbroker.QuotaExceededError as e:
                r = errno.errorcode[e.errno]
            q = c.quota()
            for s in segs:
                s.close()
            c.close()
            return r, q.objects, q.max_objects
        assert run_as(NOBODY, fill) == ("EDQUOT", 2, 2)
        assert b2.wait_idle()
    finally:
        assert b2.stop() is None
