# SPDX-License-Identifier: LGPL-2.1-or-later
# test_segments.py: segments through the Python binding against a real
# broker: lifetimes, read-only handles, growth, errors, stat/list, freeze,
# register, memfd_sealed, locks and seqlock reads, quotas, fork.
from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os

import pytest

import ipcbroker
from conftest import Child, run_as, wait_until

F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8
F_ADD_SEALS, F_GET_SEALS = 1033, 1034


def test_create_open_write_read(client):
    with client.create("seg", 4096) as s:
        assert s.size == 4096 and len(s.buf) == 4096 and not s.readonly
        assert s.buf.format == "B" and not s.buf.readonly
        s.buf[:5] = b"hello"
        with client.open("seg") as t:
            assert bytes(t.buf[:5]) == b"hello"
            t.buf[5:6] = b"!"
        assert bytes(s.buf[:6]) == b"hello!"
        info = client.stat("seg")
        assert info.name == "seg" and info.size == 4096 and info.uid == os.geteuid()
        assert info.mode == 0o600 and not info.persistent and info.handles == 1
        assert s.info.uid == os.geteuid() and s.info.mode == 0o600
        assert s.seals & F_SEAL_SHRINK and s.seals & F_SEAL_GROW
    assert wait_until(lambda: not client.exists("seg"))  # transient: gone with its last handle


def test_open_fd_is_a_descriptor_alone(client):
    with client.create("fdonly", 8192, mode=0o644) as s:
        s.buf[:3] = b"abc"
        fd, size = client.open_fd("fdonly")
        try:
            assert size == 8192 and fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            with mmap.mmap(fd, size) as m:
                assert m[:3] == b"abc"
                m[3:4] = b"d"
            assert bytes(s.buf[:4]) == b"abcd"
            assert client.stat("fdonly").handles == 1  # no handle of its own
        finally:
            os.close(fd)
        fd, size = client.open_fd("fdonly", readonly=True, owner=-1)
        try:
            with pytest.raises(PermissionError):
                mmap.mmap(fd, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            with mmap.mmap(fd, size, prot=mmap.PROT_READ) as m:
                assert m[:4] == b"abcd"
        finally:
            os.close(fd)
        with pytest.raises(PermissionError):
            client.open_fd("fdonly", owner=os.geteuid() + 1)
    with pytest.raises(FileNotFoundError):
        client.open_fd("fdonly-none")


def test_errors_are_oserror_subclasses(client):
    with pytest.raises(FileNotFoundError) as e:
        client.open("missing")
    assert e.value.errno == errno.ENOENT and e.value.filename == "missing"
    with client.create("dup", 64):
        with pytest.raises(FileExistsError) as e:
            client.create("dup", 64)
        assert e.value.errno == errno.EEXIST
        # the message is the library's own (ipcb_strerror)
        assert e.value.strerror == ipcbroker.strerror(-errno.EEXIST) != ""
    with pytest.raises(OSError) as e:
        client.create("bad/name", 64)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        client.create("x" * 256, 64)
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(ValueError):
        client.create("zero", 0)
    with pytest.raises(ValueError):
        client.create("nul\0", 10)
    with pytest.raises(OSError) as e:
        client.create("huge", 1 << 50)
    assert e.value.errno == errno.EFBIG
    with pytest.raises(FileNotFoundError):
        client.unlink("missing")
    with pytest.raises(FileNotFoundError):
        client.stat("missing")


def test_persistent_outlives_handles(client):
    client.create("keep", 100, persistent=True).close()
    info = client.stat("keep")
    assert info.persistent and info.handles == 0
    with client.open("keep") as s:
        assert s.size == 100
        s.unlink()
        with pytest.raises(FileNotFoundError):
            client.open("keep")
        s.buf[0] = 1  # handles stay valid after unlink
    assert not client.exists("keep")


def test_readonly_handle_gives_readonly_view(client):
    with client.create("ro", 4096) as w, client.open("ro", readonly=True) as r:
        assert r.readonly and r.buf.readonly
        w.buf[:3] = b"abc"
        assert bytes(r.buf[:3]) == b"abc"
        with pytest.raises(TypeError):
            r.buf[0] = 1
        with pytest.raises(PermissionError):  # the fd is O_RDONLY: no writable mapping
            mmap.mmap(r.fd, 4096, access=mmap.ACCESS_WRITE)
        with pytest.raises(ipcbroker.OwnerDiedError.__mro__[1]) as e:  # OSError
            r.unlock()
        assert e.value.errno == errno.EBADF
        with pytest.raises(PermissionError):
            r.grow(8192)


def test_close_with_live_views_raises_buffererror(client):
    s = client.create("views", 64)
    part = s.buf[8:16]
    with pytest.raises(BufferError):
        s.close()
    assert not s.closed and client.exists("views")
    part[0] = 5  # still mapped
    part.release()
    s.close()
    assert s.closed
    with pytest.raises(ValueError):
        s.buf
    s.close()  # idempotent


def test_growable(client):
    with client.create("grow", 4096, growable=True) as s, client.open("grow") as t:
        assert client.stat("grow").growable and not s.seals & F_SEAL_GROW
        s.grow(3 * 4096)
        assert s.size == 3 * 4096
        s.buf[-1] = 9
        assert t.size == 4096
        assert t.remap() == 3 * 4096 and t.buf[-1] == 9
        with pytest.raises(ValueError):
            s.grow(4096)
    with client.create("fixed", 4096) as f:
        with pytest.raises(PermissionError):  # F_SEAL_GROW
            f.grow(8192)


def test_stat_list_sync_timeout(client):
    sem_c = client.sem_create("c", 3)
    with client.create("a", 10), client.create("b", 20, persistent=True), \
            contextlib.closing(sem_c):
        names = [(i.kind, i.name) for i in client.list()]
        assert names == [(ipcbroker.KIND_SEM, "c"), (ipcbroker.KIND_SHM, "a"),
                         (ipcbroker.KIND_SHM, "b")]  # creation order
        assert [i.name for i in client.list(ipcbroker.KIND_SEM)] == ["c"]
        sem = client.stat("c", ipcbroker.KIND_SEM)
        assert sem.sem_value == 3 and sem.kind == ipcbroker.KIND_SEM
        client.set_timeout(2.5)
        client.set_timeout(-1)
        client.set_timeout(0)
        client.sync()
        client.unlink("b")


def test_freeze_then_readwrite_open_fails(client):
    with client.create("frozen", 4096) as w:
        w.buf[:4] = b"data"
    # transient: gone; make a persistent one, fill it, close, freeze
    w = client.create("frozen", 4096, persistent=True)
    w.buf[:4] = b"data"
    w.close()
    seals = client.freeze("frozen")
    assert seals & F_SEAL_WRITE
    with pytest.raises(ipcbroker.ReadOnlyError) as e:
        client.open("frozen")
    assert e.value.errno == errno.EROFS
    with client.open("frozen", readonly=True) as r:
        assert bytes(r.buf[:4]) == b"data"
    client.unlink("frozen")


def test_register_and_memfd_sealed(client):
    fd = os.memfd_create("pyreg", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, 8192)
        os.pwrite(fd, b"registered", 0)
        with pytest.raises(OSError) as e:  # no F_SEAL_SHRINK yet
            client.register("reg", fd)
        assert e.value.errno == errno.EBADFD
        fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK)
        with client.register("reg", fd, mode=0o644) as s:
            assert s.size == 8192 and bytes(s.buf[:10]) == b"registered"
            assert client.stat("reg").mode == 0o644
    finally:
        os.close(fd)
    mfd, seals = client.memfd_sealed(4096, F_SEAL_GROW)
    try:
        assert seals & F_SEAL_SHRINK and seals & F_SEAL_GROW
        assert os.fstat(mfd).st_size == 4096
        assert fcntl.fcntl(mfd, F_GET_SEALS) == seals
    finally:
        os.close(mfd)


def test_lock_and_seqlock(client):
    with client.create("lk", 64) as a, client.open("lk") as b, \
            client.open("lk", readonly=True) as r:
        with a.lock() as g:
            assert not g.owner_died
            with pytest.raises(BlockingIOError):
                b.lock(blocking=False)
            with pytest.raises(TimeoutError):
                b.lock(timeout=0.05)
            with pytest.raises(TimeoutError):
                r.read_begin(timeout=0.05)  # a reader waits while the lock is held
            a.buf[:3] = b"xyz"
            assert a.read(0, 3) == b"xyz"  # the holder just reads
        seq = r.read_begin()
        assert bytes(r.buf[:3]) == b"xyz" and not r.read_retry(seq)
        with b.lock():
            pass
        assert r.read_retry(seq)  # a writer came in between
        assert r.read(0, 3) == b"xyz"
        with pytest.raises(ValueError):
            r.read(60, 10)
        a.lock().unlock()
        with pytest.raises(PermissionError):
            a.unlock()  # not held


def test_lock_owner_died(client):
    client.create("od", 64, persistent=True).close()

    def holder(conn):
        c = ipcbroker.Client()
        s = c.open("od")
        s.lock()
        s.buf[0] = 1
        conn.send("locked")
        conn.recv(30)  # killed meanwhile

    ch = Child(holder)
    assert ch.recv() == "locked"
    with client.open("od") as s, client.open("od", readonly=True) as r:
        ch.kill()
        with pytest.raises(ipcbroker.OwnerDiedError):
            r.read_begin(timeout=5)
        with s.lock(timeout=5) as g:
            assert g.owner_died
        assert r.read(0, 1) == b"\x01"
    client.unlink("od")


def test_quota(client):
    q0 = client.quota()
    assert q0.uid == os.geteuid()
    with client.create("q", 1000):
        q = client.quota()
        assert q.objects == q0.objects + 1 and q.bytes == q0.bytes + 1000
        assert any(x.uid == os.geteuid() for x in client.quota_list())


def test_inherited_handles_are_not_used_in_the_child(client):
    s = client.create("fk", 64)
    s.buf[0] = 7

    def child():
        # the mapping is inherited and works; requests on the parent's
        # connection are refused; closing sends nothing
        out = [s.buf[0]]
        s.buf[1] = 8
        try:
            client.stat("fk")
        except OSError as e:
            out.append(e.errno)
        try:
            s.lock()
        except OSError as e:
            out.append(e.errno)
        s.close()
        client.close()
        c = ipcbroker.Client()
        with c.open("fk") as t:
            out.append(t.buf[1])
        c.close()
        return out

    assert run_as(None, child) == [7, errno.ECHILD, errno.ECHILD, 8]
    # the parent's connection and handle are intact
    assert client.stat("fk").handles == 1
    s.close()


def test_connect_errors(broker, tmp_path):
    with pytest.raises(FileNotFoundError):
        ipcbroker.Client(str(tmp_path / "nothing.sock"))
    c = ipcbroker.Client(broker.sock, timeout=1)
    c.close()
    c.close()
    with pytest.raises(ValueError):
        c.stat("x")


def test_default_client_and_module_functions(broker):
    with ipcbroker.create("m", 32) as s, ipcbroker.open("m", readonly=True) as r:
        s.buf[0] = 3
        assert r.buf[0] == 3
    assert ipcbroker.default_client() is ipcbroker.default_client()


def test_view_outliving_a_dropped_segment(client):
    """A Segment that is garbage-collected while views of its buffer live
    releases its broker handle but not the views' mapping (close() would
    raise BufferError instead)."""
    np = pytest.importorskip("numpy")
    v = client.create("tmp", 64).buf  # the Segment object is garbage at once
    v[0] = 1
    assert v[0] == 1
    client.sync()
    assert not client.exists("tmp")  # transient: its only handle was released
    v[1] = 2  # still our mapping
    b = np.frombuffer(v, np.uint8)
    del v
    assert list(b[:2]) == [1, 2]
    del b  # the mapping (and its fd) go with the last view


def test_holders(client):
    with client.create("held", 64) as s, client.open("held") as t:
        holders, oid = client.holders("held")
        assert oid == client.stat("held").id
        assert holders == [ipcbroker.Holder(os.getpid(), os.geteuid(), 2)]

        def other():
            c = ipcbroker.Client()
            with c.open("held"):
                hs, _ = c.holders("held")
            c.close()
            return sorted((h.pid == os.getpid(), h.handles) for h in hs)
        assert run_as(None, other) == [(False, 2), (True, 1)]
        del s, t
    with pytest.raises(FileNotFoundError):
        client.holders("nothing")


def test_which_broker(broker, tmp_path, monkeypatch):
    assert ipcbroker.socket_path() == broker.sock  # $IPCBROKER_SOCKET first
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    user_sock = tmp_path / "ipcbroker" / "ipcbroker.sock"
    assert ipcbroker.socket_path(ipcbroker.BROKER_USER) == str(user_sock)
    assert ipcbroker.socket_path(ipcbroker.BROKER_SYSTEM) == "/run/ipcbroker/ipcbroker.sock"
    with pytest.raises(FileNotFoundError) as e:  # nobody there yet
        ipcbroker.Client(broker=ipcbroker.BROKER_USER)
    assert str(user_sock) in str(e.value)  # ipcb_connect_error's message names the path
    user_sock.parent.mkdir()
    user_sock.symlink_to(broker.sock)
    c = ipcbroker.Client(broker=ipcbroker.BROKER_USER)  # $IPCBROKER_SOCKET not read
    c.close()
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    with pytest.raises(OSError) as e:
        ipcbroker.Client(broker=ipcbroker.BROKER_USER)
    assert e.value.errno == errno.EDESTADDRREQ
    with pytest.raises(ValueError):
        ipcbroker.Client("/x", broker=ipcbroker.BROKER_SYSTEM)
